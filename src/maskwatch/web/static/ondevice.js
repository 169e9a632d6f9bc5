// maskwatch on-device mode: the face detector and the classifier run in this browser (ONNX Runtime Web,
// WebAssembly), so no camera frame leaves the device. Every parameter comes from GET /v1/ondevice, built
// by the server from the detector's JSON, the bundle's JSON and its own settings. The functions below
// mirror the Python pipeline: maskwatch.detectors.maskface (letterbox, decode_maps, weighted NMS,
// calibrate), maskwatch.inference.crops (crop_face) and maskwatch.pipeline (fuse_probabilities, too_small).
// Plain script, no build step; also loadable in Node (module.exports) for the decoder's parity test.
"use strict";

(function (root) {
  // ---------- small numeric helpers ----------
  const sigmoid = (x) => 1 / (1 + Math.exp(-Math.min(80, Math.max(-80, x))));
  const clip = (x, lo, hi) => Math.min(hi, Math.max(lo, x));
  function roundHalfEven(x) {  // Python's round()
    const r = Math.round(x);
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }
  function softmax(values) {
    const m = Math.max(...values);
    const e = values.map((v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / s);
  }
  function logit(p) {
    const q = clip(p, 1e-6, 1 - 1e-6);
    return Math.log(q / (1 - q));
  }
  const calibrate = (score, threshold) => sigmoid(logit(score) - logit(threshold));
  const uncalibrate = (score, threshold) => sigmoid(logit(score) + logit(threshold));

  // ---------- images: {data: RGBA Uint8ClampedArray, width, height}, as ImageData ----------
  // cv2.resize with INTER_AREA (shrinking): each output pixel is the area-weighted mean of the source pixels it covers.
  function areaWeights(src, dst) {
    const scale = src / dst;
    const out = [];
    for (let d = 0; d < dst; d++) {
      const start = d * scale, end = (d + 1) * scale;
      const taps = [];
      for (let s = Math.floor(start); s < Math.min(src, Math.ceil(end)); s++) {
        const w = Math.min(end, s + 1) - Math.max(start, s);
        if (w > 1e-9) taps.push([s, w / scale]);
      }
      out.push(taps);
    }
    return out;
  }
  // cv2.resize with INTER_LINEAR (enlarging): half-pixel centres, edges clamped.
  function linearWeights(src, dst) {
    const scale = src / dst;
    const out = [];
    for (let d = 0; d < dst; d++) {
      let f = (d + 0.5) * scale - 0.5;
      let s = Math.floor(f);
      let t = f - s;
      if (s < 0) { s = 0; t = 0; }
      if (s >= src - 1) { s = src - 1; t = 0; }
      out.push(t > 0 ? [[s, 1 - t], [s + 1, t]] : [[s, 1]]);
    }
    return out;
  }
  // Taps as flat arrays (index, weight), `count` per output pixel at most: fast inner loops.
  function flatTaps(taps) {
    const count = Math.max(...taps.map((t) => t.length));
    const index = new Int32Array(taps.length * count), weight = new Float64Array(taps.length * count);
    taps.forEach((t, d) => t.forEach(([s, w], k) => { index[d * count + k] = s; weight[d * count + k] = w; }));
    return { index, weight, count };
  }
  // The region (x0, y0, w, h) of an image, coordinates outside it replicated from the edge (cv2.BORDER_REPLICATE),
  // resized to dw x dh; RGB bytes out. Area when shrinking, linear when enlarging, as maskwatch chooses.
  // Separable: rows first (each source row once), then columns.
  const tapCache = new Map();  // a camera's frames repeat the same sizes: weights are computed once per size pair
  function taps(src, dst, area) {
    const key = `${src},${dst},${area}`;
    if (!tapCache.has(key)) {
      if (tapCache.size > 256) tapCache.clear();
      tapCache.set(key, flatTaps(area ? areaWeights(src, dst) : linearWeights(src, dst)));
    }
    return tapCache.get(key);
  }
  function resizeRegion(image, x0, y0, w, h, dw, dh, area) {
    const xs = taps(w, dw, area), ys = taps(h, dh, area);
    const src = image.data, iw = image.width, ih = image.height;
    const column = new Int32Array(xs.index.length);
    for (let k = 0; k < column.length; k++) column[k] = Math.min(iw - 1, Math.max(0, x0 + xs.index[k])) * 4;
    const rows = new Float64Array(h * dw * 3);  // the region's rows, resized horizontally
    for (let sy = 0; sy < h; sy++) {
      const line = Math.min(ih - 1, Math.max(0, y0 + sy)) * iw * 4;
      const o = sy * dw * 3;
      for (let dx = 0, k = 0; dx < dw; dx++) {
        let r = 0, g = 0, b = 0;
        for (let t = 0; t < xs.count; t++, k++) {
          const wx = xs.weight[k];
          if (wx === 0) continue;
          const i = line + column[k];
          r += src[i] * wx; g += src[i + 1] * wx; b += src[i + 2] * wx;
        }
        rows[o + dx * 3] = r; rows[o + dx * 3 + 1] = g; rows[o + dx * 3 + 2] = b;
      }
    }
    const out = new Uint8Array(dw * dh * 3);
    const n = dw * 3;
    const acc = new Float64Array(n);
    for (let dy = 0; dy < dh; dy++) {
      acc.fill(0);
      for (let t = 0; t < ys.count; t++) {
        const wy = ys.weight[dy * ys.count + t];
        if (wy === 0) continue;
        const o = ys.index[dy * ys.count + t] * n;
        for (let k = 0; k < n; k++) acc[k] += rows[o + k] * wy;
      }
      const base = dy * n;
      for (let k = 0; k < n; k++) out[base + k] = Math.round(acc[k]);  // Uint8Array: values are within 0..255
    }
    return out;
  }

  // maskface.letterbox: long side to `size`, black padding right/bottom up to multiples of `multiple`; RGB float NHWC.
  function letterbox(image, size, multiple) {
    const scale = size / Math.max(image.width, image.height);
    const nw = Math.max(1, roundHalfEven(image.width * scale)), nh = Math.max(1, roundHalfEven(image.height * scale));
    const pw = Math.ceil(nw / multiple) * multiple, ph = Math.ceil(nh / multiple) * multiple;
    const rgb = resizeRegion(image, 0, 0, image.width, image.height, nw, nh, scale < 1);
    const tensor = new Float32Array(ph * pw * 3);
    for (let y = 0; y < nh; y++) {
      for (let x = 0; x < nw; x++) {
        const s = (y * nw + x) * 3, d = (y * pw + x) * 3;
        tensor[d] = rgb[s]; tensor[d + 1] = rgb[s + 1]; tensor[d + 2] = rgb[s + 2];
      }
    }
    return { tensor, width: pw, height: ph, scale };
  }

  // crops.square_box + crop_face: the square around the box's centre widened by `margin`, edges replicated; RGB.
  function squareBox(box, margin) {
    const [x1, y1, x2, y2] = box;
    const side = Math.max(x2 - x1, y2 - y1) * (1 + 2 * margin);
    const cx = (x1 + x2) / 2, cy = (y1 + y2) / 2;
    const left = roundHalfEven(cx - side / 2), top = roundHalfEven(cy - side / 2);
    return [left, top, Math.max(1, roundHalfEven(side))];
  }
  function cropFace(image, box, size, margin) {
    const [left, top, side] = squareBox(box, margin);
    return resizeRegion(image, left, top, side, side, size, size, side > size);
  }

  // ---------- boxes ----------
  function iou(a, b) {
    const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
    const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
    const inter = w * h;
    const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    return union > 0 ? inter / Math.max(union, 1e-12) : 0;
  }
  // inference.boxes.nms_clusters: greedy NMS as clusters, the kept (best) index first.
  function nmsClusters(boxes, scores, threshold) {
    const order = scores.map((s, i) => i).sort((a, b) => scores[b] - scores[a]);  // stable, as NumPy's
    const remaining = order.map(() => true);
    const clusters = [];
    for (let i = 0; i < order.length; i++) {
      if (!remaining[i]) continue;
      const cluster = [order[i]];
      remaining[i] = false;
      for (let j = 0; j < order.length; j++) {
        if (remaining[j] && iou(boxes[order[i]], boxes[order[j]]) >= threshold) {
          cluster.push(order[j]);
          remaining[j] = false;
        }
      }
      clusters.push(cluster);
    }
    return clusters;
  }
  function weightedMean(rows, scores, cluster) {
    const out = rows[cluster[0]].map(() => 0);
    let total = 0;
    for (const k of cluster) {
      total += scores[k];
      rows[k].forEach((v, c) => { out[c] += v * scores[k]; });
    }
    return out.map((v) => v / total);
  }

  // ---------- decoders: one per detector family, chosen by config.detector.decoder ----------
  // Each takes the detector's raw output for one letterboxed input and returns boxes and class probabilities
  // in input pixels; `detectFaces` below runs the passes and the merging the family's Python class does.
  const decoders = {};

  // maskface.decode_maps: maps H x W x (5 + C): heat logit, log w, log h, dx, dy, class logits (stride cells).
  decoders.maskface = {
    decode(maps, rows, cols, channels, minScore, cfg) {
      const heat = new Float64Array(rows * cols);
      for (let i = 0; i < rows * cols; i++) heat[i] = sigmoid(maps[i * channels]);
      let peaks = [];
      for (let y = 0; y < rows; y++) {
        for (let x = 0; x < cols; x++) {
          const v = heat[y * cols + x];
          if (v < minScore) continue;
          let top = true;
          for (let dy = -1; dy <= 1 && top; dy++) {
            for (let dx = -1; dx <= 1; dx++) {
              const yy = y + dy, xx = x + dx;
              if (yy >= 0 && yy < rows && xx >= 0 && xx < cols && heat[yy * cols + xx] > v) { top = false; break; }
            }
          }
          if (top) peaks.push([y, x, v]);
        }
      }
      if (peaks.length > cfg.max_peaks) peaks = peaks.map((p, i) => [p, i]).sort((a, b) => b[0][2] - a[0][2] || a[1] - b[1]).slice(0, cfg.max_peaks).map((p) => p[0]);
      const s = cfg.stride;
      return peaks.map(([y, x, score]) => {
        const c = (y * cols + x) * channels;
        const cx = (x + maps[c + 3]) * s, cy = (y + maps[c + 4]) * s;
        const w = Math.exp(clip(maps[c + 1], -10, 10)) * s, h = Math.exp(clip(maps[c + 2], -10, 10)) * s;
        const logits = Array.from(maps.subarray(c + 5, c + channels));
        return { box: [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], score, probs: softmax(logits) };
      });
    },
    // MaskFaceDetector.detect with one main pass (and the coarse pass): weighted NMS, then calibrated scores.
    async detect(image, run, cfg) {
      const rawMin = uncalibrate(cfg.min_score, cfg.threshold);
      const passes = [[cfg.size, 0]];
      if (cfg.coarse_size) passes.push([cfg.coarse_size, cfg.coarse_min_side * cfg.coarse_size]);
      const found = [];
      for (const [size, minSide] of passes) {
        const input = letterbox(image, size, cfg.multiple);
        const [out] = await run(input.tensor, [1, input.height, input.width, 3]);  // dims [1, rows, cols, channels]
        const [, rows, cols, channels] = out.dims;
        for (const d of this.decode(out.data, rows, cols, channels, rawMin, cfg)) {
          if (minSide && Math.min(d.box[2] - d.box[0], d.box[3] - d.box[1]) < minSide) continue;
          d.box = d.box.map((v) => v / input.scale);
          found.push(d);
        }
      }
      const boxes = found.map((d) => d.box), scores = found.map((d) => d.score), probs = found.map((d) => d.probs);
      return nmsClusters(boxes, scores, cfg.nms_iou).map((cluster) => ({
        box: weightedMean(boxes, scores, cluster),
        score: calibrate(scores[cluster[0]], cfg.threshold),
        probs: weightedMean(probs, scores, cluster),
      }));
    },
  };

  // yunet.decode: priors at strides 8, 16, 32 (row-major, level by level), each (cls, obj, dx, dy, log w, log h,
  // 5 keypoints x 2 [, class logits]); score sqrt(cls * obj) (sigmoids first where the model leaves them to us),
  // box centre (col + dx, row + dy) * stride, size exp(log w, log h) * stride; then NMS keeping the best box, with
  // the cluster's score-weighted class guess. Two model layouts: maskwatch's exports (RGB NHWC in, one P x C
  // output) and YuNet's own file (BGR NCHW in, one output per kind and stride, sigmoids inside).
  decoders.yunet = {
    decode(maps, height, width, channels, minScore, cfg) {
      const found = [];
      let p = 0;
      for (const stride of cfg.strides) {
        const rows = height / stride, cols = width / stride;
        for (let r = 0; r < rows; r++) {
          for (let c = 0; c < cols; c++, p++) {
            const o = p * channels;
            const cls = cfg.scores_are_logits ? sigmoid(maps[o]) : maps[o];
            const obj = cfg.scores_are_logits ? sigmoid(maps[o + 1]) : maps[o + 1];
            const score = Math.sqrt(clip(cls, 0, 1) * clip(obj, 0, 1));
            if (score < minScore) continue;
            const cx = (c + maps[o + 2]) * stride, cy = (r + maps[o + 3]) * stride;
            const w = Math.exp(clip(maps[o + 4], -10, 10)) * stride, h = Math.exp(clip(maps[o + 5], -10, 10)) * stride;
            const head = channels > cfg.map_channels
              ? softmax(Array.from(maps.subarray(o + cfg.map_channels, o + channels))) : null;
            found.push({ box: [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], score, probs: head });
          }
        }
      }
      return found;
    },
    // YuNet's own layout: BGR NCHW in; the per-stride outputs joined into the P x MAP_CHANNELS rows decode reads.
    async runSplit(input, run, cfg) {
      const plane = input.height * input.width;
      const nchw = new Float32Array(3 * plane);
      for (let i = 0; i < plane; i++) {
        nchw[i] = input.tensor[i * 3 + 2]; nchw[plane + i] = input.tensor[i * 3 + 1]; nchw[2 * plane + i] = input.tensor[i * 3];
      }
      const outputs = Object.fromEntries((await run(nchw, [1, 3, input.height, input.width])).map((o) => [o.name, o.data]));
      const kinds = [["cls", 1], ["obj", 1], ["bbox", 4], ["kps", 10]];
      const total = cfg.strides.reduce((n, s) => n + (input.height / s) * (input.width / s), 0);
      const maps = new Float32Array(total * cfg.map_channels);
      let p = 0;
      for (const s of cfg.strides) {
        const count = (input.height / s) * (input.width / s);
        for (let k = 0; k < count; k++, p++) {
          let o = p * cfg.map_channels;
          for (const [kind, width] of kinds) {
            const src = outputs[`${kind}_${s}`];
            for (let j = 0; j < width; j++) maps[o++] = src[k * width + j];
          }
        }
      }
      return { data: maps, channels: cfg.map_channels };
    },
    async detect(image, run, cfg) {
      const input = letterbox(image, cfg.size, cfg.multiple);
      let maps, channels;
      if (cfg.layout === "nchw-bgr-split") {
        ({ data: maps, channels } = await this.runSplit(input, run, cfg));
      } else {
        const [out] = await run(input.tensor, [1, input.height, input.width, 3]);  // dims [1, priors, channels]
        maps = out.data;
        channels = out.dims[out.dims.length - 1];
      }
      const found = this.decode(maps, input.height, input.width, channels, cfg.min_score, cfg);
      found.forEach((d) => { d.box = d.box.map((v) => v / input.scale); });
      const boxes = found.map((d) => d.box), scores = found.map((d) => d.score);
      return nmsClusters(boxes, scores, cfg.nms_iou).map((cluster) => ({
        box: boxes[cluster[0]],
        score: scores[cluster[0]],
        probs: found[cluster[0]].probs ? weightedMean(found.map((d) => d.probs), scores, cluster) : null,
      }));
    },
  };

  // ---------- the pipeline (maskwatch.pipeline.Detector.detect) ----------
  // pipeline.fuse_probabilities: blend the classifier's probabilities with the detector head's guess.
  function fuseProbabilities(classifier, classes, head, headWeight) {
    if (!head || headWeight <= 0 || !classes.every((c) => c in head)) return classifier;
    let guess = classes.map((c) => head[c]);
    const sum = guess.reduce((a, b) => a + b, 0);
    guess = sum > 0 ? guess.map((g) => g / sum) : classes.map(() => 1 / classes.length);
    return classifier.map((p, i) => (1 - headWeight) * p + headWeight * guess[i]);
  }

  class OnDeviceDetector {
    constructor(config, ort, detectorSession, classifierSession) {
      this.config = config;
      this.ort = ort;
      this.detector = detectorSession;
      this.classifier = classifierSession;
      this.decoder = decoders[config.detector.decoder];
      if (!this.decoder) throw new Error(`no on-device decoder for ${config.detector.decoder}`);
    }

    // The detector on one input tensor: its outputs in the model's order, as {name, data, dims}.
    async runDetector(data, dims) {
      const out = await this.detector.run({ [this.detector.inputNames[0]]: new this.ort.Tensor("float32", data, dims) });
      return this.detector.outputNames.map((name) => ({ name, data: out[name].data, dims: out[name].dims }));
    }

    // Faces in one RGBA image (ImageData), in the JSON form of maskwatch.faces.Face.
    async detect(image, timings = {}) {
      const cfg = this.config, det = cfg.detector, cls = cfg.classifier;
      const t0 = performance.now();
      const detections = await this.decoder.detect(image, (data, dims) => this.runDetector(data, dims), det);
      const faces = [];
      for (const d of detections) {
        const x1 = Math.max(0, d.box[0]), y1 = Math.max(0, d.box[1]);
        const x2 = Math.min(image.width, d.box[2]), y2 = Math.min(image.height, d.box[3]);
        if (x2 <= x1 || y2 <= y1) continue;
        const head = d.probs && det.classes ? Object.fromEntries(det.classes.map((c, i) => [c, d.probs[i]])) : null;
        faces.push({ box: [x1, y1, x2, y2], detection_score: d.score, head });
      }
      const t1 = performance.now();
      const large = faces.filter((f) => Math.min(f.box[2] - f.box[0], f.box[3] - f.box[1]) >= cfg.min_face);
      let probabilities = [];
      if (large.length) {
        const s = cls.input_size, n = large.length;
        const batch = new Float32Array(n * s * s * 3);
        large.forEach((f, k) => batch.set(cropFace(image, f.box, s, cls.margin), k * s * s * 3));
        const input = new this.ort.Tensor("float32", batch, [n, s, s, 3]);
        const out = (await this.classifier.run({ [this.classifier.inputNames[0]]: input }))[this.classifier.outputNames[0]];
        const c = cls.classes.length;
        probabilities = large.map((f, k) => Array.from(out.data.subarray(k * c, (k + 1) * c)));
      }
      const t2 = performance.now();
      const out = faces.map((f) => {
        const k = large.indexOf(f);
        if (k < 0) return { box: f.box, label: cfg.too_small, score: 0, detection_score: f.detection_score, probabilities: {}, track_id: null };
        const p = fuseProbabilities(probabilities[k], cls.classes, f.head, cfg.head_weight);
        let best = 0;
        p.forEach((v, i) => { if (v > p[best]) best = i; });
        return {
          box: f.box, label: cls.classes[best], score: p[best], detection_score: f.detection_score,
          probabilities: Object.fromEntries(cls.classes.map((c, i) => [c, p[i]])), track_id: null,
        };
      });
      timings.detect = (timings.detect || 0) + (t1 - t0);
      timings.classify = (timings.classify || 0) + (t2 - t1);
      return out;
    }
  }

  root.MaskwatchOnDevice = {
    decoders, letterbox, cropFace, squareBox, resizeRegion, nmsClusters, fuseProbabilities, calibrate, uncalibrate,
    OnDeviceDetector,
  };
  if (typeof module !== "undefined" && module.exports) module.exports = root.MaskwatchOnDevice;
})(typeof window !== "undefined" ? window : globalThis);
