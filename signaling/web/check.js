// check.js: the connection check page (/check). It tries, from this
// browser against this node:
//   UDP       a STUN binding on the node's TURN port (answered = UDP reaches
//             the node; also true when a TURN/UDP allocation works);
//   TURN/UDP, TURN/TCP, TURN/TLS
//             two connections of this page, each allowed only relay
//             candidates through that one TURN URL, meet through the node's
//             relays: a data channel measures the round trip and a short
//             bandwidth probe (the bytes cross the node up and down at once);
//   ICE-TCP   a connection to the node that may use only the node's ICE-TCP
//             candidates (POST /check/ice-tcp answers with those alone): a
//             data channel measures the round trip and an upload probe.
// The result is shown as a table and as JSON (window.haloCheck) to copy.

const $ = (id) => document.getElementById(id);
const PROBE_BYTES = 2 * 1024 * 1024; // the bandwidth probe's size, at most
const PROBE_MS = 3000; // and its duration
const STEP_MS = 10000; // each path's deadline

const rows = [
  { id: 'udp', path: 'UDP' },
  { id: 'turn-udp', path: 'TURN/UDP', pick: (u) => /^turn:/.test(u) && /transport=udp/.test(u) },
  { id: 'turn-tcp', path: 'TURN/TCP', pick: (u) => /^turn:/.test(u) && /transport=tcp/.test(u) },
  { id: 'turn-tls', path: 'TURN/TLS', pick: (u) => /^turns:/.test(u) },
  { id: 'ice-tcp', path: 'ICE-TCP' },
];

function withTimeout(p, ms, what) {
  let timer;
  return Promise.race([
    p,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms / 1000} s`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

// RELAY_ONLY explains why a direct path was not tried.
const RELAY_ONLY = 'this browser uses relays only (ICE transport policy "relay": set by a policy, an extension or a privacy setting); a direct connection cannot be tried from it';

// browserRelayOnly reports whether this browser may use relay candidates
// only: its connections say so, or it gathers no direct (host or
// reflexive) candidate at all. The direct paths cannot be tried then, and
// saying they are blocked would be wrong.
async function browserRelayOnly() {
  const pc = new RTCPeerConnection();
  try {
    if (pc.getConfiguration().iceTransportPolicy === 'relay') return true;
    pc.createDataChannel('probe');
    let direct = false;
    const done = new Promise((resolve) => {
      pc.addEventListener('icecandidate', (e) => {
        if (e.candidate && / typ (host|srflx|prflx)/.test(e.candidate.candidate)) direct = true;
        if (!e.candidate) resolve();
      });
    });
    await pc.setLocalDescription(await pc.createOffer());
    await withTimeout(done, 3000, 'gathering').catch(() => {});
    return !direct;
  } catch {
    return false;
  } finally {
    pc.close();
  }
}

// stunCheck gathers candidates with the node's STUN server; a reflexive
// candidate says the node answered over UDP. The browser leaves it out when
// it equals a local address (no NAT): then "unknown" here.
async function stunCheck(stun) {
  const pc = new RTCPeerConnection({ iceServers: [{ urls: stun }] });
  try {
    pc.createDataChannel('probe');
    const t0 = performance.now();
    const found = new Promise((resolve) => {
      pc.addEventListener('icecandidate', (e) => {
        if (e.candidate && / typ srflx /.test(e.candidate.candidate)) resolve(performance.now() - t0);
        if (!e.candidate) resolve(null);
      });
    });
    await pc.setLocalDescription(await pc.createOffer());
    return await withTimeout(found, STEP_MS, 'STUN');
  } finally {
    pc.close();
  }
}

// relayLoop connects two relay-only connections through server (one TURN
// URL) and measures the round trip and a bandwidth probe over a data
// channel between them.
async function relayLoop(server) {
  const cfg = { iceServers: [server], iceTransportPolicy: 'relay' };
  const a = new RTCPeerConnection(cfg);
  const b = new RTCPeerConnection(cfg);
  try {
    a.addEventListener('icecandidate', (e) => { if (e.candidate) b.addIceCandidate(e.candidate).catch(() => {}); });
    b.addEventListener('icecandidate', (e) => { if (e.candidate) a.addIceCandidate(e.candidate).catch(() => {}); });
    const dc = a.createDataChannel('probe', { ordered: true });
    const incoming = new Promise((resolve) => b.addEventListener('datachannel', (e) => resolve(e.channel)));
    await a.setLocalDescription(await a.createOffer());
    await b.setRemoteDescription(a.localDescription);
    await b.setLocalDescription(await b.createAnswer());
    await a.setRemoteDescription(b.localDescription);
    const opened = new Promise((resolve, reject) => {
      dc.addEventListener('open', resolve);
      a.addEventListener('connectionstatechange', () => { if (a.connectionState === 'failed') reject(new Error('no relayed connection')); });
    });
    await withTimeout(opened, STEP_MS, 'relay');
    const peer = await withTimeout(incoming, STEP_MS, 'relay');
    peer.binaryType = 'arraybuffer';
    dc.binaryType = 'arraybuffer';

    // Round trip: five pings echoed by the other side; each crosses the
    // node twice (there and back), so half of it is this browser's round
    // trip to the node. The median is shown.
    peer.addEventListener('message', (e) => { if (typeof e.data === 'string') peer.send(e.data); });
    const rtts = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const back = new Promise((resolve) => dc.addEventListener('message', resolve, { once: true }));
      dc.send(`ping ${i}`);
      await withTimeout(back, STEP_MS, 'ping');
      rtts.push((performance.now() - t0) / 2);
    }
    rtts.sort((x, y) => x - y);

    // Bandwidth: as much as PROBE_BYTES within PROBE_MS, 16 KiB messages,
    // holding back while more than 1 MiB waits in the browser.
    let got = 0;
    let lastAt = 0;
    peer.addEventListener('message', (e) => {
      if (typeof e.data !== 'string') { got += e.data.byteLength; lastAt = performance.now(); }
    });
    const chunk = new Uint8Array(16 * 1024);
    const start = performance.now();
    dc.bufferedAmountLowThreshold = 256 * 1024;
    let sent = 0;
    while (sent < PROBE_BYTES && performance.now() - start < PROBE_MS) {
      if (dc.bufferedAmount > 1024 * 1024) {
        await new Promise((resolve) => dc.addEventListener('bufferedamountlow', resolve, { once: true }));
        continue;
      }
      dc.send(chunk);
      sent += chunk.length;
    }
    const deadline = start + PROBE_MS + 2000;
    while (got < sent && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const secs = Math.max((lastAt || performance.now()) - start, 1) / 1000;
    const protocol = await selectedPath(a);
    return { rtt: rtts[2], mbps: (got * 8) / secs / 1e6, detail: `${protocol}; ${(got / 1024).toFixed(0)} KiB in ${secs.toFixed(1)} s` };
  } finally {
    a.close();
    b.close();
  }
}

// selectedPath describes the selected pair's local candidate of pc, e.g.
// "host over tcp" or "relay over tls"; '' before there is one.
async function selectedPath(pc) {
  const stats = await pc.getStats();
  let out = '';
  stats.forEach((r) => {
    if (r.type === 'transport' && r.selectedCandidatePairId) {
      const pair = stats.get(r.selectedCandidatePairId);
      const local = pair && stats.get(pair.localCandidateId);
      if (local) out = `${local.candidateType} over ${local.relayProtocol || local.protocol}`;
    }
  });
  return out;
}

// tcpCheck connects to the node over ICE-TCP alone: the node answers this
// page's offer with its TCP candidates only. Over the data channel the node
// echoes pings (the round trip) and counts the bytes of an upload probe.
async function tcpCheck() {
  const pc = new RTCPeerConnection({ iceServers: [] });
  try {
    const dc = pc.createDataChannel('probe', { ordered: true });
    dc.binaryType = 'arraybuffer';
    const gathered = new Promise((resolve) => {
      pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') resolve(); });
    });
    await pc.setLocalDescription(await pc.createOffer());
    // The node is the passive side: the page's own candidates only help.
    await withTimeout(gathered, 3000, 'gathering').catch(() => {});
    const res = await fetch('/check/ice-tcp', {
      method: 'POST', cache: 'no-store', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp,
    });
    const answer = await res.text();
    if (res.status !== 201) throw new Error(`the server refused the check: ${res.status} ${answer.trim()}`);
    if (!/ tcp .* typ /i.test(answer)) throw new Error('the server offered no TCP candidate');
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    const opened = new Promise((resolve, reject) => {
      dc.addEventListener('open', resolve);
      pc.addEventListener('connectionstatechange', () => {
        if (pc.connectionState === 'failed') reject(new Error('no connection to the node over TCP'));
      });
    });
    await withTimeout(opened, STEP_MS, 'ICE-TCP');
    const path = await selectedPath(pc);
    if (!/ over tcp$/.test(path)) throw new Error(`connected, but not over TCP (${path})`);

    // Round trip: five pings the node echoes; the median is shown.
    const rtts = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const back = new Promise((resolve) => dc.addEventListener('message', resolve, { once: true }));
      dc.send(`ping ${i}`);
      await withTimeout(back, STEP_MS, 'ping');
      rtts.push(performance.now() - t0);
    }
    rtts.sort((x, y) => x - y);

    // Upload: as much as PROBE_BYTES within PROBE_MS, then the node says
    // how much it received.
    const chunk = new Uint8Array(16 * 1024);
    const start = performance.now();
    dc.bufferedAmountLowThreshold = 256 * 1024;
    let sent = 0;
    while (sent < PROBE_BYTES && performance.now() - start < PROBE_MS) {
      if (dc.bufferedAmount > 1024 * 1024) {
        await new Promise((resolve) => dc.addEventListener('bufferedamountlow', resolve, { once: true }));
        continue;
      }
      dc.send(chunk);
      sent += chunk.length;
    }
    let got = 0;
    const deadline = start + PROBE_MS + 2000;
    while (got < sent && performance.now() < deadline) {
      const counted = new Promise((resolve) => dc.addEventListener('message', (e) => resolve(String(e.data)), { once: true }));
      dc.send('count');
      const m = /^count (\d+)$/.exec(await withTimeout(counted, STEP_MS, 'count'));
      got = m ? Number(m[1]) : got;
      if (got < sent) await new Promise((r) => setTimeout(r, 100));
    }
    const secs = Math.max(performance.now() - start, 1) / 1000;
    dc.send('done');
    return { rtt: rtts[2], mbps: (got * 8) / secs / 1e6, detail: `${path}; ${(got / 1024).toFixed(0)} KiB up in ${secs.toFixed(1)} s` };
  } finally {
    pc.close();
  }
}

function render(result) {
  const body = $('check-rows');
  body.textContent = '';
  for (const r of result.results) {
    const tr = document.createElement('tr');
    tr.dataset.path = r.path;
    const cells = [
      r.path,
      r.ok === true ? 'works' : r.ok === false ? 'blocked' : r.state,
      r.rtt_ms != null ? `${r.rtt_ms.toFixed(r.rtt_ms < 10 ? 1 : 0)} ms` : '',
      r.mbps != null ? `${r.mbps.toFixed(1)} Mbit/s` : '',
      r.detail || '',
    ];
    for (const c of cells) {
      const td = document.createElement('td');
      td.textContent = c;
      tr.appendChild(td);
    }
    tr.className = r.ok === true ? 'ok' : r.ok === false ? 'bad' : '';
    body.appendChild(tr);
  }
  const json = JSON.stringify(result, null, 2);
  $('check-json').textContent = json;
  $('check-json').hidden = false;
}

async function run() {
  $('check-again').disabled = true;
  $('check-copy').disabled = true;
  const result = {
    node: '', region: '', url: window.location.origin, at: new Date().toISOString(),
    user_agent: navigator.userAgent, done: false,
    results: rows.map((r) => ({ path: r.path, ok: null, state: 'waiting', rtt_ms: null, mbps: null, detail: '' })),
  };
  window.haloCheck = result;
  const row = (id) => result.results[rows.findIndex((r) => r.id === id)];
  render(result);
  let cfg;
  try {
    const res = await fetch('/check/ice-servers', { cache: 'no-store' });
    if (!res.ok) throw new Error(`${res.status}: ${(await res.text()).trim()}`);
    cfg = await res.json();
  } catch (err) {
    $('check-status').textContent = `The server did not answer: ${err.message || err}`;
    result.error = String(err.message || err);
    result.done = true;
    render(result);
    $('check-again').disabled = false;
    $('check-copy').disabled = false;
    return;
  }
  result.node = cfg.node;
  result.region = cfg.region;
  const turn = cfg.turn[0];
  const relayOnly = await browserRelayOnly();
  result.browser_relay_only = relayOnly;
  for (const r of rows) {
    const out = row(r.id);
    if (r.id === 'ice-tcp') {
      if (!cfg.ice_tcp) {
        Object.assign(out, { state: 'not offered', detail: 'this server has no ICE-TCP port (sfu.tcp_port)' });
        continue;
      }
      if (relayOnly) {
        Object.assign(out, { state: 'not tried', detail: RELAY_ONLY });
        continue;
      }
      $('check-status').textContent = 'Checking ICE-TCP…';
      out.state = 'checking';
      render(result);
      try {
        const m = await tcpCheck();
        Object.assign(out, { ok: true, state: '', rtt_ms: m.rtt, mbps: m.mbps, detail: m.detail });
      } catch (err) {
        Object.assign(out, { ok: false, state: '', detail: String(err.message || err) });
      }
      continue;
    }
    if (r.id === 'udp') {
      if (!cfg.stun) {
        Object.assign(out, { state: 'not offered', detail: 'this server runs no STUN/TURN port' });
        continue;
      }
      if (relayOnly) {
        Object.assign(out, { state: 'not tried', detail: RELAY_ONLY });
        continue;
      }
      $('check-status').textContent = 'Checking UDP…';
      render(result);
      try {
        const ms = await stunCheck(cfg.stun);
        if (ms != null) Object.assign(out, { ok: true, state: '', rtt_ms: ms, detail: `STUN answered at ${cfg.stun}` });
        else Object.assign(out, { state: 'unknown', detail: 'no reflexive address (no NAT, or UDP blocked): see TURN/UDP' });
      } catch (err) {
        Object.assign(out, { ok: false, state: '', detail: String(err.message || err) });
      }
      continue;
    }
    const url = turn && [].concat(turn.urls).find(r.pick);
    if (!url) {
      Object.assign(out, { state: 'not offered', detail: 'this server offers no such TURN URL' });
      continue;
    }
    $('check-status').textContent = `Checking ${r.path}…`;
    out.state = 'checking';
    render(result);
    try {
      const m = await relayLoop({ urls: url, username: turn.username, credential: turn.credential });
      Object.assign(out, { ok: true, state: '', rtt_ms: m.rtt, mbps: m.mbps, detail: `${url}: ${m.detail}` });
    } catch (err) {
      Object.assign(out, { ok: false, state: '', detail: `${url}: ${err.message || err}` });
    }
  }
  // A TURN/UDP allocation is UDP to the node too.
  const udp = row('udp');
  const tu = row('turn-udp');
  if (udp.ok !== true && tu.ok === true) {
    const own = relayOnly ? ' (this browser itself uses relays only)' : '';
    Object.assign(udp, { ok: true, state: '', rtt_ms: tu.rtt_ms, detail: `the TURN/UDP exchange reached the node over UDP${own}` });
  }
  result.done = true;
  render(result);
  const working = result.results.filter((r) => r.ok === true).map((r) => r.path);
  let summary = working.length ? `Works from here: ${working.join(', ')}.` : 'Nothing worked from this network.';
  if (relayOnly) {
    summary += ' This browser uses relays only (a policy, an extension or a privacy setting): it reaches the server through TURN, and direct connections were not tried.';
  }
  $('check-status').textContent = summary;
  $('check-again').disabled = false;
  $('check-copy').disabled = false;
}

$('check-again').addEventListener('click', () => run());
$('check-copy').addEventListener('click', async () => {
  const text = JSON.stringify(window.haloCheck, null, 2);
  try {
    await navigator.clipboard.writeText(text);
    $('check-status').textContent = 'Copied. Paste it into your support ticket.';
  } catch {
    // No clipboard (an insecure origin): select the text to copy by hand.
    const sel = window.getSelection();
    sel.selectAllChildren($('check-json'));
    $('check-status').textContent = 'Select and copy the JSON below.';
  }
});
run();
