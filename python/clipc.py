"""clipc: CLIP image and text embeddings from Python, through clip.c's library.

A thin layer (ctypes and numpy, nothing else) over libclip.so, so every
number is the one the `clip` command prints:

    import clipc
    with clipc.Model("weights.bin") as model:
        f = model.encode_image(["cat.jpg", "dog.png"])      # float32 (2, E)
        t = model.encode_text(["a cat", "a dog"])           # float32 (2, E)
        model.zero_shot("cat.jpg", ["cat", "dog"])          # [{"score": ..., "label": ...}, ...]

Images are paths (str, bytes paths are not accepted: bytes are file
content), the bytes of an encoded file, HxWx3 uint8 numpy arrays (RGB,
any size; they are resized and cropped as a decoded file is), or PIL
images when Pillow is installed. A list of them gives one row per image.

The library is looked for, in this order: the file CLIPC_LIBRARY names;
libclip.so in the source tree this module sits in (python/../, made by
`make lib`); beside this module; the system's (an installed libclip.so.1).

Threads: a Model may be shared by any number of Python threads. ctypes
lets go of the GIL during each call, and every encoding call borrows a
context (the library's working memory for one forward pass) from a pool
the Model keeps, creating one when all are busy: calls from several
threads run at the same time, each on its own context, with the numbers
of a single thread. close() waits for no one: call it when no other
thread is using the model (it raises RuntimeError otherwise).
"""
import ctypes
import ctypes.util
import os
import threading

import numpy as np

__all__ = ["ClipError", "Model", "normalize", "cosine", "library_path"]

ERR_SIZE = 256      # CLIP_ERR_SIZE
_BATCH = 16         # images decoded and encoded together, as the CLI does


class ClipError(Exception):
    """A failure the library reported; str(e) is its message. index is the
    position of the image or text it concerns in a list, when it does."""

    def __init__(self, message, index=None):
        super().__init__(message)
        self.index = index


# ---------------------------------------------------------------------------
# The library: finding it, and its functions' types

def _candidates():
    """The files the library may be, in search order: the source tree
    (python/..), then beside this module."""
    here = os.path.dirname(os.path.abspath(__file__))
    names = ("libclip.so", "libclip.so.1", "libclip.dylib", "clip.dll")
    return [os.path.join(folder, n) for folder in (os.path.dirname(here), here) for n in names]


def _load():
    env = os.environ.get("CLIPC_LIBRARY")
    if env:  # an explicit choice is never second-guessed
        try:
            return ctypes.CDLL(env), env
        except OSError as e:
            raise ImportError(f"clipc: CLIPC_LIBRARY={env} cannot be loaded: {e}") from None
    tried = []
    for path in _candidates():
        if os.path.exists(path):
            try:
                return ctypes.CDLL(path), path
            except OSError as e:
                tried.append(f"{path} ({e})")
    for name in (ctypes.util.find_library("clip"), "libclip.so.1"):
        if name:
            try:
                return ctypes.CDLL(name), name
            except OSError:
                tried.append(name)
    raise ImportError("clipc: libclip.so not found: run `make lib` in the clip.c folder (the module finds "
                      "libclip.so there), install it (`make install`), or set CLIPC_LIBRARY to its path"
                      + (f"; tried {', '.join(tried)}" if tried else ""))


_lib, library_path = _load()

c_int, c_float, c_size_t = ctypes.c_int, ctypes.c_float, ctypes.c_size_t
c_void_p, c_char_p = ctypes.c_void_p, ctypes.c_char_p
_floats = ctypes.POINTER(c_float)
_strings = ctypes.POINTER(c_char_p)


class _Config(ctypes.Structure):
    """clip_config, field for field (clip.h)."""
    _fields_ = [
        ("image_size", c_int), ("patch_size", c_int), ("channels", c_int), ("vision_width", c_int),
        ("vision_layers", c_int), ("vision_heads", c_int), ("vision_mlp", c_int), ("vision_act", c_int),
        ("vision_eps", c_float),
        ("vocab_size", c_int), ("context_length", c_int), ("text_width", c_int), ("text_layers", c_int),
        ("text_heads", c_int), ("text_mlp", c_int), ("text_act", c_int), ("text_eps", c_float),
        ("bos_id", c_int), ("eos_id", c_int),
        ("projection_dim", c_int), ("logit_scale", c_float),
        ("resize_mode", c_int), ("resize_h", c_int), ("resize_w", c_int), ("crop_h", c_int), ("crop_w", c_int),
        ("resample", c_int), ("mean", c_float * 3), ("std", c_float * 3), ("n_merges", c_int),
        ("weight_type", c_int),
    ]


class _Image(ctypes.Structure):
    """clip_image: width, height, interleaved RGB rows."""
    _fields_ = [("width", c_int), ("height", c_int), ("rgb", ctypes.POINTER(ctypes.c_ubyte))]


_images = ctypes.POINTER(_Image)


def _proto(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype, f.argtypes = restype, list(argtypes)
    return f


clip_model_load = _proto("clip_model_load", c_void_p, c_char_p, c_char_p)
clip_model_load_read = _proto("clip_model_load_read", c_void_p, c_char_p, c_char_p)
clip_model_free = _proto("clip_model_free", None, c_void_p)
clip_model_config = _proto("clip_model_config", ctypes.POINTER(_Config), c_void_p)
clip_model_fingerprint = _proto("clip_model_fingerprint", ctypes.c_uint64, c_void_p)
clip_context_create = _proto("clip_context_create", c_void_p, c_void_p, c_char_p)
clip_context_free = _proto("clip_context_free", None, c_void_p)
clip_context_encode_images = _proto("clip_context_encode_images", c_int, c_void_p, _images, c_int, _floats, c_char_p)
clip_context_encode_files = _proto("clip_context_encode_files", c_int, c_void_p, _strings, c_int, _floats,
                                   ctypes.POINTER(c_int), c_char_p, c_char_p)
clip_context_encode_labels = _proto("clip_context_encode_labels", c_int, c_void_p, _strings,
                                    ctypes.POINTER(c_size_t), c_int, _strings, c_int, _floats, c_char_p)
clip_image_free = _proto("clip_image_free", None, _images)
clip_preprocess = _proto("clip_preprocess", c_int, c_void_p, _images, _images, c_char_p)
clip_preprocess_file = _proto("clip_preprocess_file", c_int, c_void_p, c_char_p, _images, c_char_p)
clip_preprocess_data = _proto("clip_preprocess_data", c_int, c_void_p, c_char_p, c_size_t, _images, c_char_p)
clip_tokenize = _proto("clip_tokenize", c_int, c_void_p, c_char_p, c_size_t, ctypes.POINTER(ctypes.c_int32), c_int,
                       c_char_p)
clip_zero_shot = _proto("clip_zero_shot", None, c_void_p, _floats, _floats, c_int, _floats, _floats)
clip_normalize = _proto("clip_normalize", None, _floats, c_int)
clip_cosine = _proto("clip_cosine", c_float, _floats, _floats, c_int)


def _message(buf):
    return buf.value.decode("utf-8", "replace")


def _ptr(a):
    """A float32 C-contiguous array as float *."""
    return a.ctypes.data_as(_floats)


# ---------------------------------------------------------------------------
# Inputs: what an image or a text may be

try:  # optional: PIL images are accepted when Pillow is there
    from PIL import Image as _PIL
except ImportError:
    _PIL = None


def _is_image(x):
    """One image (as opposed to a list of them)."""
    if isinstance(x, np.ndarray):
        return x.ndim != 4  # a 4-D array is a stack of HxWx3 images
    return isinstance(x, (str, os.PathLike, bytes, bytearray, memoryview)) or (
        _PIL is not None and isinstance(x, _PIL.Image))


def _image_item(x, i):
    """(kind, value): "path" and the file name's bytes, "data" and the
    encoded file's bytes, or "array" and a C-contiguous HxWx3 uint8 array."""
    if isinstance(x, (str, os.PathLike)):
        path = os.fsencode(x)  # the file system's own bytes: what the library opens
        if not path or b"\0" in path:
            raise ValueError(f"clipc: image {i}: {x!r} is not a valid path")
        return "path", path
    if isinstance(x, (bytes, bytearray, memoryview)):
        data = bytes(x)
        if not data:
            raise ValueError(f"clipc: image {i}: empty bytes (expected the content of an image file)")
        return "data", data
    if _PIL is not None and isinstance(x, _PIL.Image):
        x = np.asarray(x.convert("RGB"))
    if isinstance(x, np.ndarray):
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[2] != 3 or x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"clipc: image {i}: an array must be HxWx3 uint8 (RGB); got shape {x.shape} "
                             f"dtype {x.dtype}")
        if max(x.shape[0], x.shape[1]) > 2**30:
            raise ValueError(f"clipc: image {i}: {x.shape[1]} x {x.shape[0]} is too large")
        return "array", np.ascontiguousarray(x)
    raise TypeError(f"clipc: image {i}: expected a path, the bytes of an image file, an HxWx3 uint8 array"
                    f"{' or a PIL image' if _PIL is not None else ''}; got {type(x).__name__}")


def _images_arg(images):
    """(items, single): a list of _image_item and whether one image was given."""
    single = _is_image(images)
    seq = [images] if single else list(images)
    return [_image_item(x, i) for i, x in enumerate(seq)], single


def _text_bytes(t, i):
    if isinstance(t, str):
        # surrogateescape gives back the bytes of a str decoded that way (sys.argv,
        # file names); the library turns invalid UTF-8 into U+FFFD as the CLI does
        return t.encode("utf-8", "surrogateescape")
    if isinstance(t, (bytes, bytearray)):
        return bytes(t)
    raise TypeError(f"clipc: text {i}: expected str or bytes, got {type(t).__name__}")


def _texts_arg(texts):
    single = isinstance(texts, (str, bytes, bytearray))
    seq = [texts] if single else list(texts)
    return [_text_bytes(t, i) for i, t in enumerate(seq)], single


def _string_array(items):
    """(char **, size_t *) over a list of bytes (kept alive by the caller's list)."""
    n = len(items)
    return (c_char_p * max(n, 1))(*items), (c_size_t * max(n, 1))(*[len(s) for s in items])


# ---------------------------------------------------------------------------
# The model

class Model:
    """A weights file made by export_weights.py, loaded (memory-mapped; with
    mmap=False read into memory, as `clip --no-mmap`).

    Model(path) raises ClipError with the library's message when the file
    cannot be used. Use it as a context manager, or call close(); both
    release it at once instead of when it is garbage-collected."""

    def __init__(self, path, mmap=True):
        err = ctypes.create_string_buffer(ERR_SIZE)
        self._m = None
        self._lock = threading.Lock()
        self._idle = []   # contexts no call is using
        self._all = []    # every context made, freed by close()
        self._busy = 0    # calls under way
        name = os.fsencode(path)
        if not name or b"\0" in name:
            raise ValueError(f"clipc: {path!r} is not a valid path")
        m = (clip_model_load if mmap else clip_model_load_read)(name, err)
        if not m:
            raise ClipError(_message(err))
        self._m = m
        c = clip_model_config(m).contents
        self.config = {name: (list(getattr(c, name)) if name in ("mean", "std") else getattr(c, name))
                       for name, _ in _Config._fields_}
        self.projection_dim = c.projection_dim
        self.image_size = c.image_size
        self.context_length = c.context_length
        self.path = os.fspath(path)

    def __repr__(self):
        state = "closed" if self._m is None else f"E={self.projection_dim}, S={self.image_size}"
        return f"clipc.Model({self.path!r}, {state})"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            if getattr(self, "_m", None) is not None and self._busy == 0:
                self.close()
        except Exception:  # noqa: BLE001 - at interpreter exit the module may be gone
            pass

    def close(self):
        """Free the model and its contexts (no other thread may be using it)."""
        with self._lock:
            if self._m is None:
                return
            if self._busy:
                raise RuntimeError("clipc: close() while another thread is using the model")
            for ctx in self._all:
                clip_context_free(ctx)
            clip_model_free(self._m)
            self._m, self._all, self._idle = None, [], []

    @property
    def fingerprint(self):
        """The 64-bit hash of the whole weights file (what an index records)."""
        with _Use(self, False):
            return int(clip_model_fingerprint(self._m))

    # ---- images ----

    def encode_image(self, images):
        """Image features, projected and not normalized (Hugging Face's
        get_image_features; `clip embed`'s numbers): float32 (E,) for one
        image, (n, E) for a list. Paths are decoded in parallel and
        batched; an image that cannot be read raises ClipError with the
        library's message (it names the file)."""
        items, single = _images_arg(images)
        out = np.zeros((len(items), self.projection_dim), dtype=np.float32)
        with _Use(self, True) as ctx:
            for start in range(0, len(items), _BATCH):
                self._encode_batch(ctx, items[start:start + _BATCH], start, out)
        return out[0] if single else out

    def _encode_batch(self, ctx, items, start, out):
        E = self.projection_dim
        err = ctypes.create_string_buffer(ERR_SIZE)
        paths = [(i, v) for i, (k, v) in enumerate(items) if k == "path"]
        if paths:
            n = len(paths)
            feats = np.zeros((n, E), dtype=np.float32)
            names, _ = _string_array([v for _, v in paths])
            ok = (c_int * n)()
            msgs = ctypes.create_string_buffer(n * ERR_SIZE)
            if clip_context_encode_files(ctx, names, n, _ptr(feats), ok, msgs, err):
                raise ClipError(_message(err))
            for j, (i, _) in enumerate(paths):
                if not ok[j]:
                    msg = msgs.raw[j * ERR_SIZE:(j + 1) * ERR_SIZE].split(b"\0", 1)[0]
                    raise ClipError(msg.decode("utf-8", "replace"), start + i)
                out[start + i] = feats[j]
        rest = [(i, k, v) for i, (k, v) in enumerate(items) if k != "path"]
        if not rest:
            return
        crops = (_Image * len(rest))()
        made = 0
        try:
            for j, (i, kind, value) in enumerate(rest):
                if self._crop(kind, value, ctypes.byref(crops[j]), err):
                    raise ClipError(_message(err), start + i)
                made += 1
            feats = np.zeros((len(rest), E), dtype=np.float32)
            if clip_context_encode_images(ctx, crops, len(rest), _ptr(feats), err):
                raise ClipError(_message(err))
            for j, (i, _, _) in enumerate(rest):
                out[start + i] = feats[j]
        finally:
            for j in range(made):
                clip_image_free(ctypes.byref(crops[j]))

    def _crop(self, kind, value, out, err):
        """The model's crop of one image into out (a clip_image the library allocates)."""
        if kind == "path":
            return clip_preprocess_file(self._m, value, out, err)
        if kind == "data":
            return clip_preprocess_data(self._m, value, len(value), out, err)
        h, w = value.shape[:2]
        src = _Image(w, h, value.ctypes.data_as(ctypes.POINTER(ctypes.c_ubyte)))
        return clip_preprocess(self._m, ctypes.byref(src), out, err)

    def preprocess(self, image):
        """The S x S x 3 uint8 image the model sees (Hugging Face's
        CLIPImageProcessor before /255 and normalization; `clip preprocess`)."""
        (kind, value), = _images_arg([image])[0]
        err = ctypes.create_string_buffer(ERR_SIZE)
        crop = _Image()
        with _Use(self, False):
            if self._crop(kind, value, ctypes.byref(crop), err):
                raise ClipError(_message(err))
        h, w = crop.height, crop.width  # clip_image_free clears them
        try:
            a = np.ctypeslib.as_array(crop.rgb, shape=(h * w * 3,)).copy()
        finally:
            clip_image_free(ctypes.byref(crop))
        return a.reshape(h, w, 3)

    # ---- text ----

    def tokenize(self, text):
        """Token ids: <|startoftext|>, the text's BPE tokens, <|endoftext|>,
        truncated to the context (77) keeping the last; `clip tokenize`."""
        (t,), _ = _texts_arg([text])
        err = ctypes.create_string_buffer(ERR_SIZE)
        ids = (ctypes.c_int32 * self.context_length)()
        with _Use(self, False):
            n = clip_tokenize(self._m, t, len(t), ids, self.context_length, err)
        if n < 0:
            raise ClipError(_message(err))
        return list(ids[:n])

    def encode_text(self, texts):
        """Text features (get_text_features; `clip embed --text`): float32
        (E,) for one str, (n, E) for a list."""
        items, single = _texts_arg(texts)
        out = self._labels(items, [])
        return out[0] if single else out

    def _labels(self, labels, templates):
        """clip_encode_labels: (n, E) features of labels put into templates."""
        out = np.zeros((len(labels), self.projection_dim), dtype=np.float32)
        if not labels:
            return out
        err = ctypes.create_string_buffer(ERR_SIZE)
        names, lens = _string_array(labels)
        tmpl, _ = _string_array(templates)
        with _Use(self, True) as ctx:
            if clip_context_encode_labels(ctx, names, lens, len(labels), tmpl if templates else None, len(templates),
                                          _ptr(out), err):
                raise ClipError(_message(err))
        return out

    # ---- zero-shot ----

    def zero_shot(self, images, labels, templates=None, top_k=None):
        """Zero-shot classification, as Hugging Face's pipeline returns it:
        for one image a list of {"score": probability, "label": label},
        best first; for a list of images a list of such lists.

        templates: None (each label as it is, as the pipeline with
        hypothesis_template="{}"), one template ("a photo of a {}."), or a
        list of them: a prompt ensemble (the mean of the normalized
        template features, normalized again), as `clip ... --template`.
        The pipeline's default hypothesis_template is "This is a photo of
        {}.": pass it to get the pipeline's numbers. Ranking: by logit,
        ties in label order, as the CLI ranks."""
        if isinstance(labels, (str, bytes)):
            raise TypeError("clipc: labels must be a list of strings, not one string")
        names = list(labels)
        for i, x in enumerate(names):
            if not isinstance(x, str):
                raise TypeError(f"clipc: label {i}: expected str, got {type(x).__name__}")
        if not names:
            raise ValueError("clipc: no labels")
        if templates is None:
            templates = []
        elif isinstance(templates, (str, bytes)):
            templates = [templates]
        tmpl, _ = _texts_arg(list(templates))
        text = self._labels(_texts_arg(names)[0], tmpl)
        img = self.encode_image(images)
        single = img.ndim == 1
        img = img.reshape(-1, self.projection_dim)
        n = len(names)
        logits, probs = np.zeros(n, np.float32), np.zeros(n, np.float32)
        results = []
        with _Use(self, False):
            for row in img:
                row = np.ascontiguousarray(row)
                clip_zero_shot(self._m, _ptr(row), _ptr(text), n, _ptr(logits), _ptr(probs))
                order = sorted(range(n), key=lambda j: (-logits[j], j))
                if top_k is not None:
                    order = order[:top_k]
                results.append([{"score": float(probs[j]), "label": names[j]} for j in order])
        return results[0] if single else results


class _Use:
    """A call in progress on a model: keeps close() away, and with a
    context, lends one from the model's pool (made when none is idle)."""

    def __init__(self, model, context):
        self.model, self.context, self.ctx = model, context, None

    def __enter__(self):
        m = self.model
        with m._lock:
            if m._m is None:
                raise ValueError("clipc: the model is closed")
            m._busy += 1
            if self.context and m._idle:
                self.ctx = m._idle.pop()
        if self.context and self.ctx is None:
            err = ctypes.create_string_buffer(ERR_SIZE)
            ctx = clip_context_create(m._m, err)
            if not ctx:
                with m._lock:
                    m._busy -= 1
                raise ClipError(_message(err))
            with m._lock:
                m._all.append(ctx)
            self.ctx = ctx
        return self.ctx

    def __exit__(self, *exc):
        m = self.model
        with m._lock:
            if self.ctx is not None:
                m._idle.append(self.ctx)
            m._busy -= 1


# ---------------------------------------------------------------------------
# Similarity: the library's own arithmetic (sums in double)

def normalize(x):
    """x / |x| for a vector or each row of a matrix, as float32; a zero
    vector stays zero (clip_normalize: what an index stores)."""
    a = np.array(x, dtype=np.float32, order="C", copy=True)
    if a.ndim not in (1, 2):
        raise ValueError(f"clipc: normalize takes a vector or a matrix, got shape {a.shape}")
    rows = a.reshape(-1, a.shape[-1])
    for r in rows:
        clip_normalize(_ptr(r), r.shape[0])
    return a


def cosine(a, b):
    """Cosine similarity (clip_cosine) of two vectors: a float; of a
    vector and the rows of a matrix, or of every row of a with every row
    of b: a float32 array. One library call per pair: for many rows,
    normalize both once and use a matrix product."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)
    if a.ndim not in (1, 2) or b.ndim not in (1, 2) or a.shape[-1] != b.shape[-1]:
        raise ValueError(f"clipc: cosine of shapes {a.shape} and {b.shape}")
    A, B = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    out = np.array([[clip_cosine(_ptr(r), _ptr(s), A.shape[1]) for s in B] for r in A], dtype=np.float32)
    if a.ndim == 1 and b.ndim == 1:
        return float(out[0, 0])
    if a.ndim == 1:
        return out[0]
    if b.ndim == 1:
        return out[:, 0]
    return out
