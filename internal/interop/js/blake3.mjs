// BLAKE3 (https://github.com/BLAKE3-team/BLAKE3-specs), the parts the file
// transfer protocol needs (docs/PROTOCOL.md, File transfer, Hashes): the
// 256-bit hash, the chaining value of a subtree that starts at a given
// BLAKE3 chunk counter, and the merging of subtree chaining values into
// the root hash. Written from the BLAKE3 specification; no packages.

const IV = Uint32Array.of(0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19);
const PERM = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
const CHUNK_START = 1, CHUNK_END = 2, PARENT = 4, ROOT = 8;
export const BLAKE3_CHUNK = 1024;
const BLOCK = 64;

const rotr = (x, n) => (x >>> n) | (x << (32 - n));

function g(s, a, b, c, d, x, y) {
  s[a] = (s[a] + s[b] + x) | 0; s[d] = rotr(s[d] ^ s[a], 16);
  s[c] = (s[c] + s[d]) | 0; s[b] = rotr(s[b] ^ s[c], 12);
  s[a] = (s[a] + s[b] + y) | 0; s[d] = rotr(s[d] ^ s[a], 8);
  s[c] = (s[c] + s[d]) | 0; s[b] = rotr(s[b] ^ s[c], 7);
}

// compress returns the first 8 words of the compression function's output
// (a chaining value, or the 32-byte output of a ROOT node).
function compress(cv, m, counter, blockLen, flags) {
  const s = new Uint32Array(16);
  s.set(cv, 0);
  s.set(IV.subarray(0, 4), 8);
  s[12] = Number(BigInt(counter) & 0xffffffffn);
  s[13] = Number(BigInt(counter) >> 32n);
  s[14] = blockLen;
  s[15] = flags;
  let w = Uint32Array.from(m);
  for (let r = 0; r < 7; r++) {
    g(s, 0, 4, 8, 12, w[0], w[1]); g(s, 1, 5, 9, 13, w[2], w[3]);
    g(s, 2, 6, 10, 14, w[4], w[5]); g(s, 3, 7, 11, 15, w[6], w[7]);
    g(s, 0, 5, 10, 15, w[8], w[9]); g(s, 1, 6, 11, 12, w[10], w[11]);
    g(s, 2, 7, 8, 13, w[12], w[13]); g(s, 3, 4, 9, 14, w[14], w[15]);
    if (r < 6) w = Uint32Array.from(PERM, (i) => w[i]);
  }
  const out = new Uint32Array(8);
  for (let i = 0; i < 8; i++) out[i] = s[i] ^ s[i + 8];
  return out;
}

function words(bytes) {
  const b = new Uint8Array(BLOCK);
  b.set(bytes);
  const dv = new DataView(b.buffer);
  return Uint32Array.from({ length: 16 }, (_, i) => dv.getUint32(4 * i, true));
}

const toBytes = (cv) => {
  const out = new Uint8Array(32);
  const dv = new DataView(out.buffer);
  cv.forEach((x, i) => dv.setUint32(4 * i, x, true));
  return out;
};
const fromBytes = (b) => {
  const dv = new DataView(b.buffer, b.byteOffset, 32);
  return Uint32Array.from({ length: 8 }, (_, i) => dv.getUint32(4 * i, true));
};

// chunkCV hashes one BLAKE3 chunk (at most 1024 bytes) with chunk counter
// counter; root sets ROOT on its last block.
function chunkCV(data, counter, root) {
  let cv = IV;
  const blocks = Math.max(1, Math.ceil(data.length / BLOCK));
  for (let i = 0; i < blocks; i++) {
    const block = data.subarray(i * BLOCK, (i + 1) * BLOCK);
    let flags = 0;
    if (i === 0) flags |= CHUNK_START;
    if (i === blocks - 1) flags |= CHUNK_END | (root ? ROOT : 0);
    cv = compress(cv, words(block), counter, block.length, flags);
  }
  return cv;
}

const parentCV = (l, r, root) => {
  const m = new Uint32Array(16);
  m.set(l, 0);
  m.set(r, 8);
  return compress(IV, m, 0, BLOCK, PARENT | (root ? ROOT : 0));
};

// largestPow2Below returns the largest power of two strictly below n (n ≥ 2).
const largestPow2Below = (n) => { let p = 1; while (p * 2 < n) p *= 2; return p; };

// subtree returns the chaining value (or, with root, the hash) of data as
// a BLAKE3 subtree whose first chunk has counter `counter`: the left part
// holds the largest power of two of chunks below their count.
function subtree(data, counter, root) {
  const n = Math.max(1, Math.ceil(data.length / BLAKE3_CHUNK));
  if (n === 1) return chunkCV(data, counter, root);
  const left = largestPow2Below(n);
  const l = subtree(data.subarray(0, left * BLAKE3_CHUNK), counter, false);
  const r = subtree(data.subarray(left * BLAKE3_CHUNK), counter + left, false);
  return parentCV(l, r, root);
}

// blake3 is the standard BLAKE3-256 hash of data.
export const blake3 = (data) => toBytes(subtree(data, 0, true));

// chunkHash is the hash of file chunk i (chunkSize a power-of-two multiple
// of 1024): its subtree's chaining value, or the file hash when the file
// is that one chunk.
export function chunkHash(chunk, i, chunkSize, nChunks) {
  return toBytes(subtree(chunk, i * (chunkSize / BLAKE3_CHUNK), nChunks === 1));
}

// rootOf merges chunk hashes (32 bytes each) into the file hash; no hashes
// is the empty file.
export function rootOf(hashes) {
  if (hashes.length === 0) return blake3(new Uint8Array(0));
  if (hashes.length === 1) return hashes[0];
  const merge = (hs, root) => {
    if (hs.length === 1) return fromBytes(hs[0]);
    const left = largestPow2Below(hs.length);
    return parentCV(merge(hs.slice(0, left), false), merge(hs.slice(left), false), root);
  };
  return toBytes(merge(hashes, true));
}
