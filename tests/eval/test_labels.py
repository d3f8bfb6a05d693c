import json

import pytest

from affectgpt.eval.labels import (
    LabelFormatError,
    parse_label_groups,
    parse_label_list,
    read_labels,
    read_names,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("['excited', 'joyful', 'happy']", ["excited", "joyful", "happy"]),
        ("[anger, frustration]", ["anger", "frustration"]),
        ('["Happy", "SAD"]', ["happy", "sad"]),
        ("[]", []),
        ("", []),
        ("  [ 'a' ,'b',  ]  ", ["a", "b"]),
        ("['happy', 'happy', 'Happy']", ["happy"]),
        ("['愤怒', '失望']", ["愤怒", "失望"]),
        ("【愤怒，失望】", ["愤怒", "失望"]),
        ("［‘愤怒’、“失望”］", ["愤怒", "失望"]),
        ("[\"don't believe\", 'doubt']", ["don't believe", "doubt"]),
        ("['don't believe', 'doubt']", ["don't believe", "doubt"]),
        ("[slightly   angry]", ["slightly angry"]),
    ],
)
def test_parse_python_syntax(text, expected):
    assert parse_label_list(text) == expected


def test_mertools_syntax_splits_at_every_quote():
    # The reference code splits "don't believe" into two labels; its stored groupings
    # contain exactly those fragments.
    assert parse_label_list("[\"don't believe\", 'doubt']", "mertools") == ["don", "t believe", "doubt"]
    assert parse_label_list("['a', 'b']", "mertools") == ["a", "b"]


@pytest.mark.parametrize("text", ["happy, sad", "['happy', 'sad'", "[['a']]", "['unterminated]"])
def test_malformed_lists_raise(text):
    with pytest.raises(LabelFormatError):
        parse_label_list(text)


def test_parse_groups():
    assert parse_label_groups("[['joyful', 'happy'], ['sad']]") == [["joyful", "happy"], ["sad"]]
    assert parse_label_groups("[['Agree', 'agreement'],['pleasant']]") == [["agree", "agreement"], ["pleasant"]]
    assert parse_label_groups("[[\"don't\", 'x'], []]") == [["don't", "x"]]
    assert parse_label_groups([["A"], ["b", "c"]]) == [["a"], ["b", "c"]]
    for bad in ["['a', 'b']", "[['a'], [['b']]]", "[['a']", "not a list"]:
        with pytest.raises(LabelFormatError):
            parse_label_groups(bad)


def test_read_labels_errors_name_sample_and_file(tmp_path):
    f = tmp_path / "pred.csv"
    f.write_text("name,openset\ns1,\"['a']\"\ns2,happy and sad\n", encoding="utf-8")
    with pytest.raises(LabelFormatError) as err:
        read_labels(f)
    assert "s2" in str(err.value) and "pred.csv" in str(err.value)

    f.write_text("name,openset\ns1,\"['a']\"\ns1,\"['b']\"\n", encoding="utf-8")
    with pytest.raises(LabelFormatError, match="duplicate sample name.*s1"):
        read_labels(f)

    f.write_text("name,labels\ns1,\"['a']\"\n", encoding="utf-8")
    with pytest.raises(LabelFormatError, match="no 'openset' column"):
        read_labels(f)


def test_read_labels_encodings(tmp_path):
    f = tmp_path / "gold.csv"
    f.write_bytes("name,openset\ns1,\"['愤怒']\"\n".encode("gb18030"))
    with pytest.raises(LabelFormatError, match="cannot decode as utf-8-sig"):
        read_labels(f)
    assert read_labels(f, encoding="gb18030") == {"s1": ["愤怒"]}
    with pytest.raises(LabelFormatError, match="unknown encoding"):
        read_labels(f, encoding="no-such-codec")
    f.write_bytes("\ufeffname,openset\ns1,\"['a']\"\n".encode())  # BOM from spreadsheets
    assert read_labels(f) == {"s1": ["a"]}


def test_read_labels_jsonl_and_json(tmp_path):
    jl = tmp_path / "p.jsonl"
    jl.write_text(json.dumps({"name": "s1", "openset": ["Happy", "sad"]}) + "\n\n"
                  + json.dumps({"name": "s2", "openset": "['calm']"}) + "\n", encoding="utf-8")
    assert read_labels(jl) == {"s1": ["happy", "sad"], "s2": ["calm"]}
    js = tmp_path / "p.json"
    js.write_text(json.dumps({"s1": "[a, b]", "s2": []}), encoding="utf-8")
    assert read_labels(js) == {"s1": ["a", "b"], "s2": []}
    jl.write_text("{not json}\n", encoding="utf-8")
    with pytest.raises(LabelFormatError, match="line 1 is not JSON"):
        read_labels(jl)


def test_read_names(tmp_path):
    txt = tmp_path / "names.txt"
    txt.write_text("a\nb\n\n", encoding="utf-8")
    assert read_names(txt) == ["a", "b"]
    csv = tmp_path / "split.csv"
    csv.write_text("name,split\na,train\nb,test\nc,test\n", encoding="utf-8")
    assert read_names(csv, "test") == ["b", "c"]
    assert read_names(csv, "whole") == ["a", "b", "c"]
    txt.write_text("a\na\n", encoding="utf-8")
    with pytest.raises(LabelFormatError, match="duplicate"):
        read_names(txt)
