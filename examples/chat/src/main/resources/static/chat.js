// The chat page: one WebSocket to /ws/chat on the page's own host, through wsproxy to the chat backend.
'use strict';

const nickInput = document.getElementById('nick');
const statusBadge = document.getElementById('status');
const messages = document.getElementById('messages');
const form = document.getElementById('send');
const textInput = document.getElementById('text');

// The longest text the backend takes, in UTF-8 bytes (ChatBackend.MAX_MESSAGE_SIZE): it closes the connection of a
// longer one with 1009, so the page keeps such a text in the input and says so rather than send it and lose it.
const MAX_MESSAGE_BYTES = 16384;
const utf8 = new TextEncoder();
const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30000;
let backoff = MIN_BACKOFF_MS;
let socket = null;
let reconnectTimer = null;

nickInput.value = localStorage.getItem('nick') || 'guest' + Math.floor(Math.random() * 1000);

function connect() {
  clearTimeout(reconnectTimer);
  const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
  const url = scheme + location.host + '/ws/chat?nick=' + encodeURIComponent(nickInput.value);
  const ws = new WebSocket(url);
  socket = ws;
  setStatus('connecting', false);

  ws.onopen = () => {
    backoff = MIN_BACKOFF_MS;
    setStatus('online', true);
  };
  ws.onmessage = (event) => show(JSON.parse(event.data));
  ws.onclose = (event) => {
    if (socket !== ws) {
      return; // replaced by a new connection after a nickname change
    }
    // Retry with exponential backoff and jitter, so that a restarted server is not hit by every page at once.
    const delay = Math.round(backoff * (0.5 + Math.random() / 2));
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    setStatus('offline (' + event.code + '), retrying in ' + Math.ceil(delay / 1000) + ' s', false);
    reconnectTimer = setTimeout(connect, delay);
  };
}

function show(event) {
  const item = document.createElement('li');
  if (event.type === 'message') {
    const nick = document.createElement('span');
    nick.className = 'nick';
    nick.textContent = event.nick + ': ';
    item.append(nick, document.createTextNode(event.text));
  } else {
    item.className = 'event';
    const verb = event.type === 'join' ? ' joined' : ' left';
    item.textContent = event.nick + verb + ' (' + event.online + ' online)';
  }
  const atBottom = messages.scrollTop + messages.clientHeight >= messages.scrollHeight - 5;
  messages.append(item);
  if (atBottom) {
    messages.scrollTop = messages.scrollHeight;
  }
}

function setStatus(text, online) {
  statusBadge.textContent = text;
  statusBadge.classList.toggle('online', online);
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const bytes = utf8.encode(textInput.value).length;
  if (bytes > MAX_MESSAGE_BYTES) {
    textInput.setCustomValidity('Too long: ' + bytes + ' bytes, at most ' + MAX_MESSAGE_BYTES);
    textInput.reportValidity();
    return;
  }
  if (socket && socket.readyState === WebSocket.OPEN && textInput.value) {
    socket.send(textInput.value);
    textInput.value = '';
  }
});

textInput.addEventListener('input', () => textInput.setCustomValidity(''));

nickInput.addEventListener('change', () => {
  localStorage.setItem('nick', nickInput.value);
  const old = socket;
  connect(); // the backend reads the nickname when a session opens
  old.close(1000, 'nickname changed');
});

connect();
