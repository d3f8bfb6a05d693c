"""Words for the synthetic corpus: subtitles (English + Chinese), label synonyms and the
clue phrases that EMER-style gold descriptions are written from."""

from __future__ import annotations

# Plain everyday statements with no emotional content (English, Chinese).
NEUTRAL_SENTENCES: tuple[tuple[str, str], ...] = (
    ("I went to the market this morning and bought some bread.", "我今天早上去市场买了一些面包。"),
    ("The meeting has been moved to Thursday afternoon.", "会议改到了星期四下午。"),
    ("She said the train leaves at half past seven.", "她说火车七点半出发。"),
    ("We need to pick up the package from the post office.", "我们得去邮局取包裹。"),
    ("The report is on the shelf next to the printer.", "报告在打印机旁边的架子上。"),
    ("He usually takes the bus to work on Mondays.", "他星期一通常坐公交车上班。"),
    ("They painted the kitchen walls last week.", "他们上周把厨房的墙刷了。"),
    ("I will call the office again tomorrow morning.", "我明天早上再给办公室打个电话。"),
    ("The store closes at nine on weekdays.", "这家店工作日九点关门。"),
    ("My sister moved to an apartment near the river.", "我妹妹搬到了河边的一套公寓。"),
    ("The letter arrived on Tuesday with the other mail.", "那封信星期二和其他邮件一起到的。"),
    ("We parked the car behind the library.", "我们把车停在了图书馆后面。"),
    ("You can put the boxes in the room upstairs.", "你可以把箱子放在楼上的房间里。"),
    ("The doctor asked me to come back next week.", "医生让我下周再来。"),
    ("He wrote the numbers down in a small notebook.", "他把数字记在了一个小本子上。"),
    ("The bridge on the main road is being repaired.", "主路上的那座桥正在维修。"),
    ("I have to finish these forms before lunch.", "我得在午饭前填完这些表格。"),
    ("Our neighbors bought a new table for the garden.", "我们的邻居给花园买了一张新桌子。"),
    ("The class starts at eight and ends at ten.", "课八点开始，十点结束。"),
    ("She keeps the keys in the drawer by the door.", "她把钥匙放在门边的抽屉里。"),
)

# Sentences whose words carry the emotion (English, Chinese).
EMOTIONAL_SENTENCES: dict[str, tuple[tuple[str, str], ...]] = {
    "happy": (
        ("I can't believe it, we actually won the prize!", "真不敢相信，我们居然得奖了！"),
        ("This is the best news I have heard all year!", "这是我今年听到的最好的消息！"),
        ("I'm so glad you came, it makes me really happy.", "你能来我真高兴，我太开心了。"),
        ("Everything worked out perfectly, I love it!", "一切都很顺利，我太喜欢了！"),
        ("We are going on holiday tomorrow, how wonderful!", "我们明天就去度假了，太棒了！"),
        ("You passed the exam? That's fantastic, well done!", "你考试通过了？太好了，干得漂亮！"),
    ),
    "sad": (
        ("I miss her so much, nothing feels the same anymore.", "我好想她，一切都不一样了。"),
        ("He's gone, and I never got to say goodbye.", "他走了，我都没来得及说再见。"),
        ("I tried so hard, but it was all for nothing.", "我那么努力，结果全都白费了。"),
        ("I feel so lonely since they all left.", "他们都走了以后，我觉得好孤单。"),
        ("It hurts to think about how things used to be.", "一想到以前的日子，我就心痛。"),
        ("I lost my job today, and I don't know what to do.", "我今天丢了工作，不知道该怎么办。"),
    ),
    "angry": (
        ("How dare you lie to me again!", "你怎么敢又骗我！"),
        ("I am sick and tired of your excuses!", "我受够了你的借口！"),
        ("Get out of my office right now!", "马上从我办公室出去！"),
        ("You broke it and you didn't even tell me!", "你弄坏了它，居然都不告诉我！"),
        ("This is completely unacceptable, I'm furious!", "这完全不能接受，我气死了！"),
        ("Stop shouting at me, I've had enough!", "别冲我喊了，我受够了！"),
    ),
    "surprised": (
        ("What? You're getting married next week?", "什么？你下周就要结婚了？"),
        ("Wow, I never expected to see you here!", "哇，真没想到会在这里见到你！"),
        ("Really? He did all of this by himself?", "真的吗？这些全是他一个人做的？"),
        ("No way, the whole house is finished already?", "不会吧，整栋房子已经完工了？"),
        ("Oh my goodness, where did all these people come from?", "天哪，这么多人是从哪儿来的？"),
        ("You're kidding, the results are out already?", "开玩笑吧，结果已经出来了？"),
    ),
    "worried": (
        ("What if they don't call back before tonight?", "万一他们今晚之前不回电话怎么办？"),
        ("I'm afraid something bad has happened to him.", "我怕他出了什么事。"),
        ("I keep thinking about tomorrow's test, I can't relax.", "我一直想着明天的考试，静不下心。"),
        ("The results aren't back yet, and I'm really nervous.", "结果还没出来，我真的很紧张。"),
        ("She should have been home hours ago, where is she?", "她几个小时前就该到家了，她在哪儿？"),
        ("I don't know if we have enough money to pay this.", "我不知道我们的钱够不够付这个。"),
    ),
    "disgusted": (
        ("Ugh, this milk has gone completely sour.", "呃，这牛奶完全馊了。"),
        ("That is the most revolting thing I've ever seen.", "这是我见过最恶心的东西。"),
        ("Get that smelly thing away from me.", "把那个臭东西拿开。"),
        ("I can't stand the way he treats people, it's gross.", "我受不了他对人的那种态度，太恶心了。"),
        ("There's hair in my soup, how disgusting.", "我的汤里有头发，真恶心。"),
        ("The whole kitchen smells rotten, it makes me sick.", "整个厨房都是腐烂的味道，让我想吐。"),
    ),
}

# Gold-label vocabulary: the first word is the emotion's own label; the rest are synonyms
# a describer or annotator might use (labels are drawn from this list).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "neutral": ("neutral", "calm", "composed", "peaceful"),
    "happy": ("happy", "joyful", "cheerful", "delighted", "excited"),
    "sad": ("sad", "sorrowful", "unhappy", "downcast", "heartbroken"),
    "angry": ("angry", "furious", "irritated", "annoyed", "indignant"),
    "surprised": ("surprised", "astonished", "amazed", "shocked"),
    "worried": ("worried", "anxious", "nervous", "uneasy"),
    "disgusted": ("disgusted", "repulsed", "revolted", "disdainful"),
}
SYNONYMS_ZH: dict[str, tuple[str, ...]] = {
    "neutral": ("平静", "中性", "镇定"),
    "happy": ("高兴", "快乐", "开心", "愉悦"),
    "sad": ("悲伤", "难过", "伤心", "沮丧"),
    "angry": ("愤怒", "生气", "恼火"),
    "surprised": ("惊讶", "吃惊", "震惊"),
    "worried": ("担心", "焦虑", "紧张", "不安"),
    "disgusted": ("厌恶", "反感", "嫌弃"),
}

# Facial clues (English, Chinese) per emotion, keyed by the drawn feature they describe.
FACE_CLUES: dict[str, tuple[tuple[str, str], ...]] = {
    "neutral": (
        ("the eyebrows stay level", "眉毛保持平直"),
        ("the mouth is relaxed and closed", "嘴巴放松闭合"),
        ("the gaze is steady", "目光平稳"),
    ),
    "happy": (
        ("the corners of the mouth turn up into a broad smile", "嘴角上扬，露出灿烂的笑容"),
        ("the mouth opens and shows the upper teeth", "嘴巴张开露出上排牙齿"),
        ("the cheeks lift and the eyes narrow", "脸颊抬起，眼睛眯起"),
    ),
    "sad": (
        ("the corners of the mouth turn down", "嘴角下垂"),
        ("the inner ends of the eyebrows rise", "眉头内侧上扬"),
        ("the eyelids droop", "眼皮低垂"),
        ("the head lowers slightly", "头微微低下"),
    ),
    "angry": (
        ("the eyebrows are pulled down and together", "眉头紧锁下压"),
        ("the eyes glare", "怒目而视"),
        ("the mouth opens to show clenched teeth", "嘴巴张开露出咬紧的牙齿"),
        ("the face flushes red", "脸色涨红"),
    ),
    "surprised": (
        ("the eyebrows shoot up", "眉毛高高扬起"),
        ("the eyes open wide", "眼睛睁得很大"),
        ("the mouth drops open into an O shape", "嘴巴张成O形"),
    ),
    "worried": (
        ("the eyebrows rise and draw together", "眉毛上扬并向中间聚拢"),
        ("the eyes are widened", "眼睛睁大"),
        ("the lips stretch tensely sideways", "嘴唇紧张地向两侧拉开"),
    ),
    "disgusted": (
        ("the nose wrinkles", "鼻子皱起"),
        ("the upper lip rises on one side", "一侧上唇抬起"),
        ("the eyes narrow and the eyebrows lower", "眼睛眯起，眉毛下压"),
    ),
}
TEARS_CLUE = ("tears run down the cheeks", "泪水顺着脸颊流下")

# Vocal clues (English, Chinese) per emotion; they match the prosody of speech.py.
VOICE_CLUES: dict[str, tuple[tuple[str, str], ...]] = {
    "neutral": (
        ("the voice is steady, with an even pitch", "声音平稳，音调平缓"),
        ("the speech has a moderate pace and volume", "语速和音量适中"),
    ),
    "happy": (
        ("the voice is higher than usual and lively", "声音比平时高，很有活力"),
        ("the speech is quick and bouncy, with a wide pitch range", "语速轻快，音调起伏大"),
    ),
    "sad": (
        ("the voice is low and quiet", "声音低沉而轻"),
        ("the speech is slow and flat, with long pauses", "语速缓慢，语调平淡，停顿较长"),
    ),
    "angry": (
        ("the voice is loud and forceful", "声音响亮而有力"),
        ("the speech is fast and clipped", "语速很快，语气急促"),
    ),
    "surprised": (
        ("the pitch jumps up and the voice is loud", "音调突然升高，声音很大"),
        ("the sentence ends on a rising, exclamatory tone", "句末语调上扬，带着惊叹"),
    ),
    "worried": (
        ("the voice is soft and slightly trembling", "声音轻而略带颤抖"),
        ("the speech is hesitant, with pauses between words", "说话犹豫，词与词之间有停顿"),
    ),
    "disgusted": (
        ("the voice is low and drawn out", "声音低沉而拖长"),
        ("the delivery is slow and dismissive", "语气缓慢而不屑"),
    ),
}

# What the words of an emotional subtitle reveal (English, Chinese).
TEXT_CLUES: dict[str, tuple[str, str]] = {
    "neutral": ("the words are a plain statement of fact", "这句话只是平淡地陈述事实"),
    "happy": ("the words express delight about good news", "这句话表达了对好消息的喜悦"),
    "sad": ("the words express loss and sorrow", "这句话表达了失落和悲伤"),
    "angry": ("the words are an accusation and an outburst", "这句话是指责和发泄"),
    "surprised": ("the words express disbelief at something unexpected",
                  "这句话表达了对意外之事的难以置信"),
    "worried": ("the words express fear that something will go wrong",
                "这句话表达了对事情出问题的担忧"),
    "disgusted": ("the words express revulsion", "这句话表达了强烈的反感"),
}

MODALITY_NAMES = {"video": ("facial expression", "面部表情"), "audio": ("tone of voice", "语音语调"),
                  "text": ("wording", "字幕内容")}
