"""The app's drawing canvas, its timeline and its activity line: HTML, CSS and the JavaScript behind them (no
Python logic; the timeline's rows are made by `vos.editing.app_views.timeline_html`).

Why our own canvas rather than Gradio's ImageEditor: the ImageEditor fits the frame into a canvas of
its own size and offsets the layer on frames whose shape differs from it (a 640x480 mask came back
shifted and cropped), and it commits its whole layer, so a correction meant erasing the prediction.
This canvas is the frame's pixels: it is sized to the frame (CSS only scales it, keeping the aspect
ratio), the pointer is mapped through the canvas's displayed box into frame pixels, and only the
gestures go to the server (brush and eraser strokes with their radius, a box), which rasterises them
over the mask the canvas showed (`vos.editing.drawing`). The server's view comes as JSON in the component's
value (`Handlers.canvas_value` in `vos.editing.app_handlers`): the frame with the other objects as background
(JPEG), the selected object's mask (PNG), its colour and a key naming the frame, the object and that mask; a
commit sends the key back, so strokes land on the frame and object they were drawn on or are refused.

Images are replaced only once the new ones have loaded: nothing blanks while the server works.
`data-serial` on the canvas root says which view is on screen (what the browser test waits for).
"""

CANVAS_HTML = """
<div class="vos-canvas">
  <div class="vos-tools">
    <button type="button" data-tool="brush" class="vos-tool vos-on" title="paint the object (adds)">Brush</button>
    <button type="button" data-tool="eraser" class="vos-tool" title="remove from the object">Eraser</button>
    <button type="button" data-tool="box" class="vos-tool" title="draw a box around the object, then press
'Mask from box'">Box</button>
    <label>size <input type="range" class="vos-size" min="1" max="60" value="8"></label>
    <button type="button" class="vos-undo-stroke" title="take back the last stroke (not sent yet)">Undo stroke</button>
    <button type="button" class="vos-clear" title="drop every stroke and the box not sent yet">Clear</button>
    <label><input type="checkbox" class="vos-show-mask" checked> mask</label>
  </div>
  <div class="vos-stage"><canvas class="vos-view" width="16" height="9"></canvas></div>
  <div class="vos-note">no video open</div>
</div>
"""

CANVAS_CSS = """
.vos-canvas { display: flex; flex-direction: column; gap: 6px; }
.vos-tools { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; font-size: 0.9em; }
.vos-tools button { padding: 2px 10px; border: 1px solid #888; border-radius: 4px; background: transparent;
  cursor: pointer; }
.vos-tools button.vos-on { background: #ff7c00; color: white; border-color: #ff7c00; }
.vos-stage { display: flex; justify-content: center; align-items: center; background: #222; min-height: 120px; }
.vos-view { display: block; margin: 0; padding: 0; border: 0; cursor: crosshair; touch-action: none;
  image-rendering: pixelated; }
.vos-note { font-size: 0.85em; opacity: 0.85; min-height: 1.2em; }
"""

CANVAS_JS = r"""
const root = element.querySelector('.vos-canvas');
const cv = root.querySelector('.vos-view');
const ctx = cv.getContext('2d');
const note = root.querySelector('.vos-note');
const sizeInput = root.querySelector('.vos-size');
const work = document.createElement('canvas'), wctx = work.getContext('2d');
const base = document.createElement('canvas'), bctx = base.getContext('2d', {willReadFrequently: true});
let view = null, bg = null, key = null, strokes = [], box = null, tool = 'brush', drag = null, showMask = true;
let wanted = 0, drawPending = false;

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const im = new Image();
    im.onload = () => resolve(im);
    im.onerror = () => reject(new Error('image did not load'));
    im.src = src;
  });
}
function rgb(hex) { return [1, 3, 5].map(i => parseInt(hex.substr(i, 2), 16)); }
function paint(c, s) {
  c.globalCompositeOperation = s.tool === 'eraser' ? 'destination-out' : 'source-over';
  c.strokeStyle = c.fillStyle = view.color;
  c.lineWidth = 2 * s.radius; c.lineCap = 'round'; c.lineJoin = 'round';
  c.beginPath();
  if (s.points.length === 1) {
    c.arc(s.points[0][0], s.points[0][1], s.radius, 0, 2 * Math.PI); c.fill();
  } else {
    c.moveTo(s.points[0][0], s.points[0][1]);
    for (const p of s.points.slice(1)) c.lineTo(p[0], p[1]);
    c.stroke();
  }
  c.globalCompositeOperation = 'source-over';
}
function render() {
  drawPending = false;
  if (!view || !bg) return;
  ctx.globalAlpha = 1; ctx.clearRect(0, 0, cv.width, cv.height); ctx.drawImage(bg, 0, 0);
  wctx.clearRect(0, 0, work.width, work.height); wctx.drawImage(base, 0, 0);
  for (const s of strokes) paint(wctx, s);
  if (showMask) { ctx.globalAlpha = 0.5; ctx.drawImage(work, 0, 0); ctx.globalAlpha = 1; }
  if (box) {
    ctx.save(); ctx.strokeStyle = view.color; ctx.lineWidth = Math.max(1, cv.width / 300);
    ctx.setLineDash([4 * ctx.lineWidth, 3 * ctx.lineWidth]);
    ctx.strokeRect(Math.min(box[0], box[2]), Math.min(box[1], box[3]), Math.abs(box[2] - box[0]),
                   Math.abs(box[3] - box[1]));
    ctx.restore();
  }
}
function fit() {  // the frame as large as the stage allows, its aspect ratio kept (set in pixels: no letterbox)
  const stage = root.querySelector('.vos-stage');
  const scale = Math.min(Math.max(120, stage.clientWidth) / cv.width, 0.7 * window.innerHeight / cv.height);
  cv.style.width = `${cv.width * scale}px`; cv.style.height = `${cv.height * scale}px`;
}
new ResizeObserver(fit).observe(root.querySelector('.vos-stage'));
function later() { if (!drawPending) { drawPending = true; requestAnimationFrame(render); } }
function describe() {
  if (!view || !view.width) { note.textContent = view && view.note ? view.note : 'no video open'; return; }
  const pending = strokes.length ? `; ${strokes.length} stroke(s) not sent: press "Use drawing"` : '';
  const boxed = box ? '; a box: press "Mask from box"' : '';
  note.textContent = view.note + pending + boxed;
}
async function show(v) {
  const mine = ++wanted;
  if (!v || !v.width) {
    view = v; bg = null; key = null; strokes = []; box = null;
    ctx.clearRect(0, 0, cv.width, cv.height); describe();
    root.dataset.serial = v ? String(v.serial) : '';
    return;
  }
  let images;
  try { images = await Promise.all([loadImage(v.background), loadImage(v.mask)]); }
  catch (err) { note.textContent = 'the frame did not load: ' + err.message; return; }
  if (mine !== wanted) return;  // a newer view came while these loaded
  const [bgImage, maskImage] = images;
  for (const c of [cv, work, base]) {
    if (c.width !== v.width || c.height !== v.height) { c.width = v.width; c.height = v.height; }
  }
  fit();
  bctx.clearRect(0, 0, v.width, v.height); bctx.drawImage(maskImage, 0, 0);
  const d = bctx.getImageData(0, 0, v.width, v.height), px = d.data, [r, g, b] = rgb(v.color);
  for (let i = 0; i < px.length; i += 4) {
    const on = px[i] > 127;
    px[i] = r; px[i + 1] = g; px[i + 2] = b; px[i + 3] = on ? 255 : 0;
  }
  bctx.putImageData(d, 0, 0);
  if (v.key !== key || v.clear) { strokes = []; box = null; }
  key = v.key; view = v; bg = bgImage;
  render(); describe();
  root.dataset.serial = String(v.serial);
}
function at(e) {  // frame pixels; a drag that leaves the canvas is held within a frame's size of it (the
  // server refuses points farther out)
  const r = cv.getBoundingClientRect();
  const x = (e.clientX - r.left) * cv.width / r.width, y = (e.clientY - r.top) * cv.height / r.height;
  return [Math.min(Math.max(x, -cv.width), 2 * cv.width), Math.min(Math.max(y, -cv.height), 2 * cv.height)];
}
function radius() {  // the size slider is in screen pixels: a brush looks the same on any frame size
  const r = cv.getBoundingClientRect();
  return Math.max(0.5, Number(sizeInput.value) * cv.width / Math.max(1, r.width));
}
const round = p => [Math.round(p[0] * 10) / 10, Math.round(p[1] * 10) / 10];
cv.addEventListener('pointerdown', e => {
  if (!view || !view.width || e.button !== 0) return;
  e.preventDefault(); cv.setPointerCapture(e.pointerId);
  const p = round(at(e));
  if (tool === 'box') { box = [p[0], p[1], p[0], p[1]]; drag = {box: true}; }
  else { drag = {tool, radius: Math.round(radius() * 100) / 100, points: [p]}; strokes.push(drag); }
  later(); describe();
});
cv.addEventListener('pointermove', e => {
  if (!drag) return;
  const p = round(at(e));
  if (drag.box) { box[2] = p[0]; box[3] = p[1]; }
  else {
    const last = drag.points[drag.points.length - 1];
    if (Math.abs(p[0] - last[0]) + Math.abs(p[1] - last[1]) >= 0.5) drag.points.push(p);
  }
  later();
});
for (const ev of ['pointerup', 'pointercancel']) cv.addEventListener(ev, () => { drag = null; later(); describe(); });
root.querySelectorAll('.vos-tool').forEach(b => b.addEventListener('click', () => {
  tool = b.dataset.tool;
  root.querySelectorAll('.vos-tool').forEach(o => o.classList.toggle('vos-on', o === b));
}));
root.querySelector('.vos-undo-stroke').addEventListener('click', () => { strokes.pop(); render(); describe(); });
root.querySelector('.vos-clear').addEventListener('click', () => { strokes = []; box = null; render(); describe(); });
root.querySelector('.vos-show-mask').addEventListener('change', e => { showMask = e.target.checked; render(); });

window.vosCanvas = {
  strokes: () => JSON.stringify({key, strokes}),
  box: () => JSON.stringify({key, box}),
  key: () => key,
  radius,
  tool: name => root.querySelector(`.vos-tool[data-tool="${name}"]`).click(),
};
function fromServer() {
  let v = null;
  try { v = props.value ? JSON.parse(props.value) : null; } catch (err) { v = null; }
  show(v);
}
watch('value', fromServer);
fromServer();
"""

ACTIVITY_HTML = '<div class="vos-activity"></div>'
ACTIVITY_CSS = ".vos-activity { font-size: 0.9em; min-height: 1.2em; }"

#: the stuck-action watch: a press of one of these buttons that starts no work on the server within a few
#: seconds is said in the activity line, with what the app is busy with (`Activity` in `vos.editing.app_views`)
WATCHED_BUTTONS = ("open", "add-object", "rename-object", "remove-object", "use-drawing", "box-to-mask", "accept",
                   "undo", "use-mask", "forward", "backward", "export", "save-session", "open-session", "play")

ACTIVITY_JS = r"""
const line = element.querySelector('.vos-activity');
const watched = new Set(JSON.parse(props.watched));
let pending = null, started = 0;
document.addEventListener('click', e => {
  const b = e.target.closest ? e.target.closest('button[id]') : null;
  if (b && watched.has(b.id)) pending = {id: b.id, label: b.innerText.trim(), at: Date.now(), started};
}, true);
async function poll() {
  let a = null;
  try { a = await server.activity(); } catch (err) { a = null; }
  if (a) started = a.started;
  if (pending && a && a.started > pending.started) pending = null;
  const waited = pending ? Math.round((Date.now() - pending.at) / 1000) : 0;
  if (pending && waited >= 3) {
    const stop = a && a.cancellable ? '; Cancel stops it' : '';
    line.textContent = !a ? `"${pending.label}" pressed ${waited} s ago: the app does not answer; is it still running? (its log says)`
      : a.buttons.includes(pending.id) ? `"${pending.label}" is running already (${a.seconds} s): a second press does nothing until it ends${stop}`
      : a.busy ? `"${pending.label}" pressed ${waited} s ago waits: the app is busy with "${a.busy}" for ${a.seconds} s${stop}`
      : `"${pending.label}" pressed ${waited} s ago has not started: the app got no request; reload the page (the app's log lists every action it received)`;
    line.dataset.state = 'stuck';
  } else {
    line.textContent = a && a.busy ? `working: ${a.busy} (${a.seconds} s)` : '';
    line.dataset.state = a && a.busy ? 'busy' : 'idle';
  }
}
setInterval(() => { if (!document.hidden) poll(); }, 1000);
"""

#: the timeline: one bar per object, its runs of frames coloured by state; a click on a bar jumps to the frame
#: under the pointer (the server's `jump` event with {frame}); a marker shows the frame on screen
TIMELINE_CSS = """
.vos-timeline { font-size: 0.85em; display: flex; flex-direction: column; gap: 3px; }
.vos-tl-legend { display: flex; flex-wrap: wrap; gap: 10px; align-items: center; opacity: 0.9; }
.vos-tl-legend i { display: inline-block; width: 12px; height: 10px; margin-right: 4px; vertical-align: middle; }
.vos-tl-row { display: flex; align-items: center; gap: 8px; }
.vos-tl-label { flex: 0 0 16em; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.vos-tl-label.vos-tl-warn { color: #d62728; font-weight: 600; }
.vos-tl-bar { position: relative; flex: 1 1 auto; display: flex; height: 16px; cursor: pointer; background: #444; }
.vos-tl-run { height: 100%; }
.vos-tl-cursor { position: absolute; top: -2px; bottom: -2px; width: 2px; background: #fff; outline: 1px solid #000;
  pointer-events: none; }
.vos-given { background: #ffffff; } .vos-present { background: #2ca02c; } .vos-empty { background: #ff9f1a; }
.vos-lost { background: #d62728; } .vos-none { background: #555; }
"""

TIMELINE_JS = r"""
element.addEventListener('click', e => {
  const bar = e.target.closest ? e.target.closest('.vos-tl-bar') : null;
  if (!bar) return;
  const box = bar.getBoundingClientRect(), n = Number(bar.dataset.frames);
  if (!n || box.width <= 0) return;
  const frame = Math.min(n - 1, Math.max(0, Math.floor((e.clientX - box.left) / box.width * n)));
  trigger('jump', {frame});
});
"""
