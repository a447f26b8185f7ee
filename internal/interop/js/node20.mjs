// js-libp2p 3 targets Node.js 22 (p-retry 8 declares it; it-queue calls
// Promise.withResolvers, new in Node 22). Debian's and this project's
// machines have Node.js 20, so supply the one missing built-in, exactly as
// the language specifies it. Imported before any libp2p module.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers() {
    let resolve, reject;
    const promise = new this((res, rej) => { resolve = res; reject = rej; });
    return { promise, resolve, reject };
  };
}
