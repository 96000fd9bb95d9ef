// wasi.js - the little of WASI (wasi_snapshot_preview1) that clip.wasm's C
// library can call. The library never prints and touches no files in the
// browser, so this is a stub with manners: stdout and stderr go to the
// console, clocks and random bytes come from the browser, and everything
// else answers "bad file descriptor" or "not supported" instead of
// trapping. Imports the module names that are not listed here get ENOSYS.
"use strict";

const WASI_ESUCCESS = 0;
const WASI_EBADF = 8;
const WASI_EINVAL = 28;
const WASI_ENOSYS = 52;
const WASI_ESPIPE = 70;

class WasiExit extends Error {
  constructor(code) {
    super("the program exited with status " + code);
    this.code = code;
  }
}

// memory(): the module's current WebAssembly.Memory (known only after
// instantiation). module: the compiled WebAssembly.Module, whose import
// list decides which stubs are needed.
function wasiImports(memory, module) {
  const view = () => new DataView(memory().buffer);
  const bytes = () => new Uint8Array(memory().buffer);
  const pending = { 1: "", 2: "" };
  const decoder = new TextDecoder();

  const calls = {
    // fd_write(fd, iovs, iovs_len, *nwritten): stdout and stderr, a line at a time
    fd_write(fd, iovs, count, nwritten) {
      if (fd !== 1 && fd !== 2) return WASI_EBADF;
      const v = view(), b = bytes();
      let total = 0;
      for (let i = 0; i < count; i++) {
        const ptr = v.getUint32(iovs + 8 * i, true), len = v.getUint32(iovs + 8 * i + 4, true);
        pending[fd] += decoder.decode(b.subarray(ptr, ptr + len));
        total += len;
      }
      let nl;
      while ((nl = pending[fd].indexOf("\n")) >= 0) {
        (fd === 1 ? console.log : console.warn)("clip.wasm: " + pending[fd].slice(0, nl));
        pending[fd] = pending[fd].slice(nl + 1);
      }
      v.setUint32(nwritten, total, true);
      return WASI_ESUCCESS;
    },
    fd_close(fd) {
      return fd <= 2 ? WASI_ESUCCESS : WASI_EBADF;
    },
    fd_seek(fd) {
      return fd <= 2 ? WASI_ESPIPE : WASI_EBADF;
    },
    // the standard streams are character devices (so stdio does not buffer oddly)
    fd_fdstat_get(fd, stat) {
      if (fd > 2) return WASI_EBADF;
      const v = view();
      for (let i = 0; i < 24; i += 4) v.setUint32(stat + i, 0, true);
      v.setUint8(stat, 2); // filetype: character device
      return WASI_ESUCCESS;
    },
    fd_prestat_get() {
      return WASI_EBADF; // no preopened folders: the end of the list
    },
    args_sizes_get(argc, size) {
      view().setUint32(argc, 0, true);
      view().setUint32(size, 0, true);
      return WASI_ESUCCESS;
    },
    args_get() {
      return WASI_ESUCCESS;
    },
    environ_sizes_get(count, size) {
      view().setUint32(count, 0, true);
      view().setUint32(size, 0, true);
      return WASI_ESUCCESS;
    },
    environ_get() {
      return WASI_ESUCCESS;
    },
    // clock_time_get(id, precision, *time): nanoseconds; 0 realtime, others monotonic
    clock_time_get(id, precision, out) {
      if (id > 3) return WASI_EINVAL;
      const ms = id === 0 ? Date.now() : performance.now();
      view().setBigUint64(out, BigInt(Math.round(ms * 1e6)), true);
      return WASI_ESUCCESS;
    },
    clock_res_get(id, out) {
      if (id > 3) return WASI_EINVAL;
      view().setBigUint64(out, 1000n, true);
      return WASI_ESUCCESS;
    },
    random_get(ptr, len) {
      const b = bytes();
      for (let i = 0; i < len; i += 65536) crypto.getRandomValues(b.subarray(ptr + i, ptr + Math.min(len, i + 65536)));
      return WASI_ESUCCESS;
    },
    sched_yield() {
      return WASI_ESUCCESS;
    },
    proc_exit(code) {
      throw new WasiExit(code);
    },
  };

  const wasi = {};
  for (const imp of WebAssembly.Module.imports(module)) {
    if (imp.module !== "wasi_snapshot_preview1" || imp.kind !== "function") continue;
    wasi[imp.name] = calls[imp.name] || (() => WASI_ENOSYS);
  }
  return { wasi_snapshot_preview1: wasi };
}

if (typeof module !== "undefined") module.exports = { wasiImports, WasiExit };
