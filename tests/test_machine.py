"""The machine facts the demo prints and stores: CPU model and vector extensions."""

from affectgpt.machine import cpu_info, machine_info

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13 64-Core Processor
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2

processor\t: 1
model name\t: AMD EPYC 7B13 64-Core Processor
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2
"""


def test_cpu_model_and_vector_extensions_from_cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    info = cpu_info(path)
    assert info["cpu"] == "AMD EPYC 7B13 64-Core Processor"
    assert info["vector_extensions"] == "sse4_2 avx avx2 fma"  # no AVX-512 on this one
    assert info["cores"] >= 1


def test_this_machine():
    info = machine_info()
    assert info["cpu"] and info["vector_extensions"] and info["torch"]
    assert info["torch_cpu_capability"] in ("DEFAULT", "NO AVX", "AVX2", "AVX512", "SVE256",
                                            "ZVECTOR", "VSX", "NEON")
