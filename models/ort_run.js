// Runs an ONNX model with ONNX Runtime (npm package onnxruntime-node) on
// inputs given as raw little-endian files, and writes every graph output the
// same way: the reference splitinfer's ONNX import is compared with.
//
//   node models/ort_run.js REQUEST.json
//
// REQUEST.json: {"model": "m.onnx", "threads": 1, "precise": true,
//                "inputs":  [{"name": "x", "dtype": "float32", "dims": [1,3,8,8], "file":
//                "x.bin"}], "outputs": "DIR"}
// writes DIR/output_K.bin for the K-th graph output and prints one JSON line
// [{"name": ..., "dtype": ..., "dims": [...], "file": ...}, ...] on stdout.
// "precise" asks for exact int8 arithmetic on CPUs without VNNI (below).
// With "repeat": K and "timing": "T.json" in the request, the model runs once
// to warm up and K more times, each timed (process.hrtime around
// session.run), and T.json gets {"seconds": [...]}; the outputs written are
// the last run's.
// Driven by models/ort_reference.py; onnxruntime-node is found through
// NODE_PATH (jobs/lib/common.sh ensure_onnxruntime installs it).
"use strict";
const fs = require("fs");
const path = require("path");

const kArrays = {
  float32: Float32Array, float64: Float64Array, int8: Int8Array, uint8: Uint8Array,
  int32: Int32Array, int64: BigInt64Array,
};

function fail(message) {
  process.stderr.write(`ort_run: error: ${message}\n`);
  process.exit(2);
}

async function main() {
  if (process.argv.length !== 3) fail("usage: node ort_run.js REQUEST.json");
  let ort;
  try {
    ort = require("onnxruntime-node");
  } catch (e) {
    fail(`cannot load onnxruntime-node (NODE_PATH=${process.env.NODE_PATH || ""}): ${e.message}`);
  }
  const request = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
  const threads = request.threads || 1;
  let session;
  try {
    const options = {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
    };
    // Exact int8 products: on x86-64 CPUs without VNNI, ONNX Runtime's
    // default u8 x s8 kernels add pairs of products in saturating int16
    // (vpmaddubsw); session.x64quantprecision makes them u8 x u8, exact.
    if (request.precise) options.extra = {session: {x64quantprecision: '1'}};
    session = await ort.InferenceSession.create(request.model, options);
  } catch (e) {
    fail(`ONNX Runtime cannot load ${request.model}: ${String(e.message).split("\n")[0]}`);
  }
  const feeds = {};
  for (const input of request.inputs) {
    const Array = kArrays[input.dtype];
    if (!Array) fail(`unsupported input dtype ${input.dtype}`);
    const bytes = fs.readFileSync(input.file);
    const data = new Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    feeds[input.name] = new ort.Tensor(input.dtype, data, input.dims);
  }
  let results;
  const seconds = [];
  try {
    results = await session.run(feeds);
    for (let k = 0; k < (request.repeat || 0); ++k) {
      const start = process.hrtime.bigint();
      results = await session.run(feeds);
      seconds.push(Number(process.hrtime.bigint() - start) * 1e-9);
    }
  } catch (e) {
    fail(`ONNX Runtime failed running ${request.model}: ${String(e.message).split("\n")[0]}`);
  }
  if (request.timing) fs.writeFileSync(request.timing, JSON.stringify({seconds}) + '\n');
  const written = session.outputNames.map((name, k) => {
    const tensor = results[name];
    const file = path.join(request.outputs, `output_${k}.bin`);
    fs.writeFileSync(file, Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength));
    return { name, dtype: tensor.type, dims: tensor.dims, file };
  });
  process.stdout.write(JSON.stringify(written) + "\n");
}

main();
