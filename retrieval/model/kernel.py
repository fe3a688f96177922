"""Which kernels the encoder runs on this CPU, named for index manifests and evaluation reports.

ONNX Runtime picks its int8 matrix kernel from the CPU's instruction sets when it starts
(MLAS's dispatch): on x86-64 AMX, AVX-512 VNNI, AVX-VNNI, AVX-512, AVX2 or SSE4.1; on ARM64
i8mm, the dot product or plain NEON. The encoder's numbers can differ in their last bits
between kernels (their float parts add in other orders), so every index and every figure
says which one made it. The CPU's features are read the way the programs read them (cpuid
through numpy, the auxiliary vector on Linux), so an emulated CPU reports itself.
"""

from __future__ import annotations

import ctypes
import functools
import platform

# MLAS's int8 kernels on x86-64, best first, with the features each needs (numpy's names;
# "cpuinfo:" for flags numpy does not list).
_X86 = (("AMX", {"cpuinfo:amx_int8", "AVX512_SPR"}), ("AVX-512 VNNI", {"AVX512VNNI"}),
        ("AVX-512", {"AVX512BW"}), ("AVX-VNNI", {"AVX2", "cpuinfo:avx_vnni"}),
        ("AVX2", {"AVX2"}), ("SSE4.1", {"SSE41"}))
_AT_HWCAP2 = 26
_HWCAP2_I8MM = 1 << 13  # Linux arm64


def _numpy_features() -> dict[str, bool]:
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_features__  # type: ignore[no-redef]
    return dict(__cpu_features__)


def _cpuinfo_flags() -> set[str]:
    """Linux's flag names (x86 `flags`, arm64 `Features`); empty elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        pass
    return set()


def _arm_i8mm() -> bool:
    try:
        getauxval = ctypes.CDLL(None).getauxval
    except (OSError, AttributeError):
        return False
    getauxval.restype = ctypes.c_ulong
    getauxval.argtypes = [ctypes.c_ulong]
    return bool(getauxval(_AT_HWCAP2) & _HWCAP2_I8MM)


@functools.cache
def int8_kernel() -> str:
    """The int8 matrix kernel ONNX Runtime uses here: "x86-64 AVX2", "arm64 NEON dot", ..."""
    has = {k for k, v in _numpy_features().items() if v}
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64", "i686", "i386", "x86"):
        # AVX-VNNI and AMX are not in numpy's list; /proc/cpuinfo has them (the host's
        # under user-mode emulation, hence only believed where cpuid agrees so far).
        has |= {f"cpuinfo:{flag}" for flag in _cpuinfo_flags()}
        name = next((n for n, needs in _X86 if needs <= has), "SSE2")
        return f"x86-64 {name}"
    if machine in ("aarch64", "arm64"):
        if _arm_i8mm():
            return "arm64 NEON i8mm"
        return "arm64 NEON dot" if "ASIMDDP" in has else "arm64 NEON"
    return machine or "unknown CPU"


def encoder_kernel(encoder: str) -> str:
    """What `encoder` (retrieval.model.embed.ENCODERS) runs on here, with its library's version."""
    if encoder == "onnx-int8":
        return f"{int8_kernel()} int8, {_version('onnxruntime')}"
    if encoder == "onnx":
        return f"{int8_kernel().split()[0]} float32, {_version('onnxruntime')}"
    return f"{platform.machine().lower()} float32, {_version('torch')}"


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{package} {version(package)}"
    except PackageNotFoundError:
        return package
