// The image viewer: oriented boxes as SVG polygons over the picture, class toggles, a confidence slider, raw or
// refined scores, and a tooltip with every rule that changed a box. Data: window.NSOD_IMAGE (data/K.js).
(function () {
  "use strict";
  var d = window.NSOD_IMAGE;
  if (!d) {
    document.getElementById("nodata").hidden = false;
    return;
  }
  var NS = "http://www.w3.org/2000/svg";
  var PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
    "#fabed4", "#469990", "#dcbeff", "#9a6324", "#fffac8", "#800000", "#aaffc3", "#808000"];
  var svg = document.getElementById("scene");
  svg.setAttribute("viewBox", "0 0 " + d.width + " " + d.height);
  if (d.src) {
    var img = document.createElementNS(NS, "image");
    img.setAttribute("href", d.src);
    img.setAttribute("width", d.width);
    img.setAttribute("height", d.height);
    img.setAttribute("preserveAspectRatio", "none");
    svg.appendChild(img);
  }
  var color = {};
  d.classes.forEach(function (c, i) { color[c[0]] = PALETTE[i % PALETTE.length]; });
  var shown = {};
  var fs = document.getElementById("classes");
  d.classes.forEach(function (c) {
    shown[c[0]] = true;
    var label = document.createElement("label");
    var box = document.createElement("input");
    box.type = "checkbox";
    box.checked = true;
    box.dataset.class = c[0];
    box.addEventListener("change", function () { shown[c[0]] = box.checked; update(); });
    var sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = color[c[0]];
    label.appendChild(box);
    label.appendChild(sw);
    label.appendChild(document.createTextNode(c[0] + " (" + c[1] + ")"));
    fs.appendChild(label);
  });
  var polys = d.detections.map(function (det, i) {
    var p = document.createElementNS(NS, "polygon");
    var pts = [];
    for (var j = 0; j < 8; j += 2) pts.push(det.polygon[j] + "," + det.polygon[j + 1]);
    p.setAttribute("points", pts.join(" "));
    p.setAttribute("stroke", color[det.class]);
    p.setAttribute("class", "det" + (det.changes.length ? " changed" : ""));
    p.id = "det-" + i;
    p.dataset.class = det.class;
    p.dataset.index = i;
    p.dataset.changed = det.changes.length ? "1" : "0";
    svg.appendChild(p);
    return p;
  });
  var mode = "score";
  var conf = document.getElementById("conf");
  var confValue = document.getElementById("conf-value");
  var visible = document.getElementById("n-visible");
  function update() {
    var min = parseFloat(conf.value);
    confValue.textContent = min.toFixed(2);
    var n = 0;
    d.detections.forEach(function (det, i) {
      var on = shown[det.class] && det[mode] >= min;
      polys[i].style.display = on ? "" : "none";
      if (on) n++;
    });
    visible.textContent = n;
  }
  conf.addEventListener("input", update);
  document.querySelectorAll("input[name=mode]").forEach(function (r) {
    r.addEventListener("change", function () { mode = r.value; update(); });
  });
  var tip = document.getElementById("tip");
  function line(parent, text, cls) {
    var div = document.createElement("div");
    if (cls) div.className = cls;
    div.textContent = text;
    parent.appendChild(div);
    return div;
  }
  function show(i, ev) {
    var det = d.detections[i];
    tip.textContent = "";
    var head = document.createElement("strong");
    head.textContent = det.class + " #" + i;
    tip.appendChild(head);
    line(tip, "refined " + det.score.toFixed(4) + " · raw " + det.raw.toFixed(4));
    if (!det.changes.length) line(tip, "no rule changed it");
    det.changes.forEach(function (k) {
      var c = d.changes[k];
      var div = line(tip, "", "rule");
      var code = document.createElement("code");
      code.textContent = c.rule;
      div.appendChild(code);
      div.appendChild(document.createTextNode(" " + c.action + " " + c.before.toFixed(4) + " → " + c.after.toFixed(4)));
      line(div, c.reason);
    });
    tip.hidden = false;
    move(ev);
  }
  function move(ev) {
    var x = ev.clientX + 14, y = ev.clientY + 14;
    var r = tip.getBoundingClientRect();
    if (x + r.width > window.innerWidth) x = Math.max(0, ev.clientX - r.width - 14);
    if (y + r.height > window.innerHeight) y = Math.max(0, ev.clientY - r.height - 14);
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  }
  polys.forEach(function (p, i) {
    p.addEventListener("mouseenter", function (ev) { show(i, ev); });
    p.addEventListener("mousemove", move);
    p.addEventListener("mouseleave", function () { tip.hidden = true; });
  });
  var m = /^#det-(\d+)$/.exec(location.hash);
  if (m && polys[+m[1]]) polys[+m[1]].classList.add("focus");
  update();
})();
