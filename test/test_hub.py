#!/usr/bin/env python3
"""Hub downloads against a local mirror on 127.0.0.1: HF_ENDPOINT, HF_TOKEN
(sent to the Hub, never to the host a redirect leads to), redirects, the
cache, every repository layout (today's, the older merges.txt one, sharded,
open_clip), clear errors; and `make demo` end to end with the mirror
standing in for huggingface.co. The mirror holds the generated tiny models
(test/make_checkpoint.py) and, with ../shared, then the Hugging Face
fixture folders."""
import http.server
import json
import os
import shutil
import subprocess
import threading

from common import FIX, OUT, PYTHON, ROOT, VOCAB, check, export, finish, fixtures_part, tiny_model
from make_checkpoint import read_safetensors, write_safetensors

MIRROR = os.path.join(OUT, "mirror")
TOKEN = "hf_test_token"
log = []


class Handler(http.server.SimpleHTTPRequestHandler):
    """The Hub: /<org>/<name>/resolve/<rev>/<file>; weights files redirect to
    the 'CDN' server. Private repositories (org 'private') need the token."""

    def __init__(self, *a, **kw):
        super().__init__(*a, directory=MIRROR, **kw)

    def log_message(self, *a):
        pass

    def do_GET(self):
        auth = self.headers.get("Authorization")
        log.append(("hub", self.path, auth))
        parts = self.path.split("/")
        if len(parts) < 6 or parts[3] != "resolve":
            self.send_error(400)
            return
        if parts[1] == "private" and auth != f"Bearer {TOKEN}":
            self.send_error(401)
            return
        local = os.path.join(MIRROR, parts[1], parts[2], parts[5])
        if not os.path.exists(local):
            self.send_error(404)
            return
        if parts[5].endswith(".safetensors"):
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{cdn.server_port}/{parts[1]}/{parts[2]}/{parts[5]}")
            self.end_headers()
            return
        self.path = f"/{parts[1]}/{parts[2]}/{parts[5]}"
        super().do_GET()


class CdnHandler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **kw):
        super().__init__(*a, directory=MIRROR, **kw)

    def log_message(self, *a):
        pass

    def do_GET(self):
        log.append(("cdn", self.path, self.headers.get("Authorization")))
        if self.headers.get("Authorization"):
            self.send_error(400, "signed URL requests must not carry Authorization")
            return
        super().do_GET()


hub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
cdn = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CdnHandler)
for s in (hub, cdn):
    threading.Thread(target=s.serve_forever, daemon=True).start()
env = {}


def export_hub(repo, out, token=None, extra=()):
    e = dict(env)
    if token:
        e["HF_TOKEN"] = token
    p = subprocess.run([PYTHON, os.path.join(ROOT, "export_weights.py"), repo, out] + list(extra), env=e,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    return p.returncode, p.stderr.decode()


def same(a, b):
    with open(a, "rb") as f1, open(b, "rb") as f2:
        return f1.read() == f2.read()


def suite(tag, folders, vocab):
    """folders: the Hugging Face folders tiny-quickgelu, tiny-quickgelu-legacy,
    tiny-gelu and the open_clip folder tiny-quickgelu-openclip."""
    tcheck = lambda ok, what: check(ok, tag + what)  # noqa: E731
    shutil.rmtree(MIRROR, ignore_errors=True)
    for org, name, model in (("test-org", "tiny-clip", "tiny-quickgelu"),
                             ("test-org", "tiny-legacy", "tiny-quickgelu-legacy"),
                             ("private", "tiny-clip", "tiny-gelu"), ("openai", "clip-vit-base-patch32", "tiny-gelu"),
                             ("test-org", "tiny-openclip", "tiny-quickgelu-openclip")):
        shutil.copytree(folders[model], os.path.join(MIRROR, org, name),
                        ignore=shutil.ignore_patterns("reference_outputs.*"))
    # a sharded repository, made from tiny-quickgelu's tensors
    shard_dir = os.path.join(MIRROR, "test-org", "tiny-sharded")
    shutil.copytree(folders["tiny-quickgelu"], shard_dir,
                    ignore=shutil.ignore_patterns("reference_outputs.*", "model.safetensors"))
    tensors = read_safetensors(os.path.join(folders["tiny-quickgelu"], "model.safetensors"))
    names = sorted(tensors)
    wmap = {}
    for i, part in enumerate((names[:20], names[20:])):
        fn = f"model-0000{i + 1}-of-00002.safetensors"
        write_safetensors(os.path.join(shard_dir, fn), [(k, tensors[k].shape, (lambda k=k: tensors[k])) for k in part])
        wmap.update({k: fn for k in part})
    with open(os.path.join(shard_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": wmap}, f)
    cache = os.path.join(OUT, "hub-cache")
    shutil.rmtree(cache, ignore_errors=True)
    env.clear()
    env.update(os.environ, HF_ENDPOINT=f"http://127.0.0.1:{hub.server_port}", CLIP_CACHE=cache)
    env.pop("HF_TOKEN", None)
    log.clear()

    local = export(folders["tiny-quickgelu"], os.path.join(OUT, "hub-local.bin"))
    rc, err = export_hub("test-org/tiny-clip", os.path.join(OUT, "hub1.bin"))
    tcheck(rc == 0 and same(local, os.path.join(OUT, "hub1.bin")), f"Hub id through HF_ENDPOINT: same file as the local export {err[-200:] if rc else ''}")
    tcheck("model.safetensors" in err and "MB" in err, "a progress line is printed")
    tcheck(any(w == "cdn" for w, _, _ in log), "the weights came through a redirect")
    n = len(log)
    rc, err = export_hub("test-org/tiny-clip", os.path.join(OUT, "hub1b.bin"))
    tcheck(rc == 0 and len(log) == n, "a second export is served from the cache (no requests)")
    rc, err = export_hub("test-org/tiny-legacy", os.path.join(OUT, "hub2.bin"))
    tcheck(rc == 0 and same(local, os.path.join(OUT, "hub2.bin")), f"old repository layout (merges.txt, vocab.json, preprocessor_config.json) {err[-200:] if rc else ''}")
    rc, err = export_hub("test-org/tiny-sharded", os.path.join(OUT, "hub5.bin"))
    tcheck(rc == 0 and same(local, os.path.join(OUT, "hub5.bin")), f"sharded repository (index + 2 shards) {err[-200:] if rc else ''}")
    rc, err = export_hub("test-org/tiny-openclip", os.path.join(OUT, "hub6.bin"))
    tcheck(rc == 1 and "--tokenizer" in err, f"open_clip repository without --tokenizer: says so ({err.strip()[-90:]})")
    rc, err = export_hub("test-org/tiny-openclip", os.path.join(OUT, "hub6.bin"), extra=["--tokenizer", vocab])
    tcheck(rc == 0 and same(local, os.path.join(OUT, "hub6.bin")), f"open_clip repository with --tokenizer {err[-200:] if rc else ''}")
    rc, err = export_hub("private/tiny-clip", os.path.join(OUT, "hub3.bin"))
    tcheck(rc == 1 and "HF_TOKEN" in err, f"private repository without a token: {err.strip()[-160:]}")
    log.clear()
    rc, err = export_hub("private/tiny-clip", os.path.join(OUT, "hub3.bin"), token=TOKEN)
    tcheck(rc == 0, f"private repository with HF_TOKEN {err[-200:] if rc else ''}")
    tcheck(all(a == f"Bearer {TOKEN}" for w, _, a in log if w == "hub") and all(a is None for w, _, a in log if w == "cdn"),
           "the token goes to the Hub, never to the redirect's host")
    rc, err = export_hub("test-org/no-such-model", os.path.join(OUT, "hub4.bin"))
    tcheck(rc == 1 and "no config.json" in err, f"missing repository: {err.strip()[-160:]}")
    e2 = dict(env, HF_ENDPOINT="http://127.0.0.1:9")
    p = subprocess.run([PYTHON, os.path.join(ROOT, "export_weights.py"), "test-org/x", os.path.join(OUT, "x.bin")],
                       env=dict(e2, CLIP_CACHE=os.path.join(OUT, "hub-cache2")), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tcheck(p.returncode == 1 and b"cannot reach" in p.stderr, f"unreachable endpoint: {p.stderr.decode().strip()[-160:]}")

    # make demo, with the mirror standing in for huggingface.co
    weights = os.path.join(OUT, "demo-weights.bin")
    if os.path.exists(weights):
        os.unlink(weights)
    p = subprocess.run(["make", "-s", "-C", ROOT, "demo", f"WEIGHTS={weights}", f"PYTHON={PYTHON}"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    lines = p.stdout.decode().splitlines()
    tcheck(p.returncode == 0 and os.path.exists(weights) and len(lines) >= 3 and all("%" in l for l in lines[-3:]),
           f"make demo: exports openai/clip-vit-base-patch32 and classifies the sample photo {p.stderr.decode()[-300:]}")


suite("generated: ", {"tiny-quickgelu": tiny_model("tiny-quickgelu")[0],
                      "tiny-quickgelu-legacy": tiny_model("tiny-quickgelu", "legacy")[0],
                      "tiny-quickgelu-openclip": tiny_model("tiny-quickgelu", "openclip")[0],
                      "tiny-gelu": tiny_model("tiny-gelu")[0]}, VOCAB)
if fixtures_part("test_hub: the Hugging Face fixture folders"):
    suite("fixture: ", {m: os.path.join(FIX, "models", m) for m in
                        ("tiny-quickgelu", "tiny-quickgelu-legacy", "tiny-quickgelu-openclip", "tiny-gelu")},
          os.path.join(FIX, "vocab", "bpe_simple_vocab_16e6.txt.gz"))
hub.shutdown()
cdn.shutdown()
finish("test_hub")
