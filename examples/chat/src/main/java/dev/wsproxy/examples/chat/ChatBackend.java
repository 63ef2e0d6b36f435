package dev.wsproxy.examples.chat;

import java.net.URI;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.Fields;
import org.eclipse.jetty.util.thread.QueuedThreadPool;
import org.eclipse.jetty.websocket.api.Callback;
import org.eclipse.jetty.websocket.api.Session;
import org.eclipse.jetty.websocket.api.StatusCode;
import org.eclipse.jetty.websocket.server.WebSocketUpgradeHandler;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The chat server behind the proxy: a plain Jetty WebSocket server that knows nothing about wsproxy.
 *
 * <p>It accepts sessions at {@code /ws/chat?nick=NAME}, keeps them in a set, and broadcasts to every session a JSON
 * event when someone joins or leaves and for each text message:
 * <pre>{@code
 * {"type":"join","nick":"alice","online":2}
 * {"type":"message","nick":"alice","text":"hello"}
 * {"type":"leave","nick":"alice","online":1}
 * }</pre>
 *
 * <p>A text over 16 KiB closes its sender's session with {@code 1009}, a binary message with {@code 1003}.
 *
 * <p>Thread-safe: sessions come and go on Jetty threads.
 */
public final class ChatBackend implements AutoCloseable {

    /** The path the chat endpoint is mapped to. The proxy forwards {@code /ws/...} with the path unchanged. */
    public static final String PATH = "/ws/chat";

    /**
     * Longer nicknames are cut to this many UTF-16 units: {@value}; one fewer when the last would be the first half
     * of a surrogate pair (an emoji), which is dropped whole. Control characters and bidirectional marks are dropped
     * first, and a nickname with nothing else is {@code anonymous}.
     */
    static final int MAX_NICK_LENGTH = 32;

    /** The largest text message the backend accepts, in bytes: {@value}. Larger ones close the session with 1009. */
    static final int MAX_MESSAGE_SIZE = 16 * 1024;

    /**
     * The largest event the backend sends, in bytes: {@value}. A message event carries a text of up to
     * {@link #MAX_MESSAGE_SIZE} bytes and a nickname of up to {@link #MAX_NICK_LENGTH} characters, both JSON-escaped,
     * and escaping can make a text six times longer: a control character, one byte, becomes a backslash, a {@code u}
     * and four hex digits. The proxy's message limit applies to what the backend sends as well, so it must be at
     * least this (see {@link ChatDemo}), or a client's legal message would make the proxy close every session it is
     * broadcast to.
     */
    static final int MAX_EVENT_SIZE = 6 * MAX_MESSAGE_SIZE + 6 * MAX_NICK_LENGTH + 64;

    /** Events queued for one session beyond which it is closed as too slow: {@value}. */
    static final int MAX_QUEUED_EVENTS = 256;

    private static final Logger LOG = LoggerFactory.getLogger(ChatBackend.class);

    private final Set<Session> sessions = ConcurrentHashMap.newKeySet();
    private final Server server;
    private final ServerConnector connector;

    /** Creates a backend that will listen on {@code 127.0.0.1} on a free port. */
    public ChatBackend() {
        QueuedThreadPool threads = new QueuedThreadPool();
        threads.setName("chat-backend");
        server = new Server(threads);
        connector = new ServerConnector(server);
        connector.setHost("127.0.0.1");
        connector.setPort(0);
        server.addConnector(connector);
        server.setHandler(WebSocketUpgradeHandler.from(server, container -> {
            // A chat is mostly idle: the proxy's idle timeout (1 h by default) decides, not Jetty's 30 s default.
            container.setIdleTimeout(Duration.ofHours(1));
            container.setMaxTextMessageSize(MAX_MESSAGE_SIZE);
            // A reader that cannot keep up must not make the server buffer without bound.
            container.setMaxOutgoingFrames(MAX_QUEUED_EVENTS);
            container.addMapping(PATH, (request, response, callback) -> new ChatEndpoint(this, nickOf(request)));
        }));
    }

    /**
     * Starts the server.
     *
     * @return the backend's base URI, like {@code ws://127.0.0.1:34567}, to give to {@code Backend.of(...)}
     * @throws Exception if Jetty does not start
     */
    public URI start() throws Exception {
        server.start();
        URI uri = URI.create("ws://127.0.0.1:" + connector.getLocalPort());
        LOG.info("Chat backend listening on {}{}", uri, PATH);
        return uri;
    }

    /**
     * Returns how many chat sessions are open now.
     *
     * @return the number of sessions in the set
     */
    public int onlineCount() {
        return sessions.size();
    }

    /** Stops the server, closing every open session. */
    @Override
    public void close() {
        try {
            server.stop();
        } catch (Exception e) {
            LOG.warn("Failed to stop the chat backend", e);
        }
    }

    private void join(Session session, String nick) {
        sessions.add(session);
        broadcast("{\"type\":\"join\",\"nick\":" + json(nick) + ",\"online\":" + sessions.size() + "}");
    }

    private void leave(Session session, String nick) {
        if (sessions.remove(session)) {
            broadcast("{\"type\":\"leave\",\"nick\":" + json(nick) + ",\"online\":" + sessions.size() + "}");
        }
    }

    private void say(String nick, String text) {
        broadcast("{\"type\":\"message\",\"nick\":" + json(nick) + ",\"text\":" + json(text) + "}");
    }

    private void broadcast(String event) {
        for (Session session : sessions) {
            // Whole messages may be queued concurrently. A send fails when the session is closing, or when it has
            // MAX_QUEUED_EVENTS unsent: then close it, and the page reconnects.
            session.sendText(event, Callback.from(() -> { }, failure -> {
                LOG.debug("Closing a chat session that cannot take more events", failure);
                session.close(StatusCode.POLICY_VIOLATION, "too slow", Callback.NOOP);
            }));
        }
    }

    private static String nickOf(Request request) {
        Fields query = Request.extractQueryParameters(request);
        String given = query.getValue("nick");
        String nick = given == null ? "" : printable(given).strip();
        if (nick.isEmpty()) {
            return "anonymous";
        }
        if (nick.length() <= MAX_NICK_LENGTH) {
            return nick;
        }
        // Cut between code points: the first half of a surrogate pair (an emoji) alone reaches the clients as '?',
        // what Jetty's UTF-8 encoder makes of it. A grapheme of several code points (a letter and a combining mark,
        // a flag) may still be cut between them, leaving valid text.
        int end = Character.isHighSurrogate(nick.charAt(MAX_NICK_LENGTH - 1)) ? MAX_NICK_LENGTH - 1 : MAX_NICK_LENGTH;
        return nick.substring(0, end);
    }

    /**
     * Returns the nickname without control characters (a line break, a NUL: every page shows the name, and the log at
     * DEBUG) and without the invisible marks that reorder text (U+202E RIGHT-TO-LEFT OVERRIDE and its kin): the page
     * shows a name at the start of a line, and a mark left open there turns the rest of the line around, so that
     * U+202E followed by {@code ecila} reads as {@code alice}. Names in right-to-left scripts need none of them.
     */
    private static String printable(String nick) {
        StringBuilder kept = new StringBuilder(nick.length());
        for (int i = 0; i < nick.length(); i++) {
            char c = nick.charAt(i);
            boolean bidiMark = c == '\u061C' || c == '\u200E' || c == '\u200F' || c >= '\u202A' && c <= '\u202E'
                    || c >= '\u2066' && c <= '\u2069';
            if (!Character.isISOControl(c) && !bidiMark) {
                kept.append(c);
            }
        }
        return kept.toString();
    }

    /** Returns {@code value} as a JSON string literal. */
    static String json(String value) {
        StringBuilder json = new StringBuilder(value.length() + 2).append('"');
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            switch (c) {
                case '"' -> json.append("\\\"");
                case '\\' -> json.append("\\\\");
                case '\n' -> json.append("\\n");
                case '\r' -> json.append("\\r");
                case '\t' -> json.append("\\t");
                default -> {
                    if (c < 0x20 || c == 0x2028 || c == 0x2029) {
                        json.append(String.format("\\u%04x", (int) c));
                    } else {
                        json.append(c);
                    }
                }
            }
        }
        return json.append('"').toString();
    }

    /**
     * One chat participant. Jetty creates an instance per session and calls it on its own threads; it demands the
     * next frame by itself once a callback returns ({@link Session.Listener.AutoDemanding}).
     */
    public static final class ChatEndpoint implements Session.Listener.AutoDemanding {

        private final ChatBackend chat;
        private final String nick;
        private volatile @Nullable Session session;

        ChatEndpoint(ChatBackend chat, String nick) {
            this.chat = chat;
            this.nick = nick;
        }

        @Override
        public void onWebSocketOpen(Session session) {
            this.session = session;
            chat.join(session, nick);
        }

        @Override
        public void onWebSocketText(String message) {
            chat.say(nick, message);
        }

        /**
         * Closes the session with {@code 1003} at the first frame of a binary message (RFC 6455 section 7.4.1: data
         * of a type the endpoint cannot accept): the chat speaks text, and a message dropped unseen would leave its
         * sender believing the room had read it. Taken frame by frame, so nothing of the message is buffered.
         */
        @Override
        public void onWebSocketPartialBinary(ByteBuffer payload, boolean last, Callback callback) {
            callback.succeed();
            Session current = session;
            if (current != null) {
                current.close(StatusCode.BAD_DATA, "text messages only", Callback.NOOP);
            }
        }

        @Override
        public void onWebSocketError(Throwable cause) {
            LOG.debug("Chat session of {} failed", nick, cause);
            Session current = session;
            if (current != null) {
                chat.leave(current, nick);
            }
        }

        @Override
        public void onWebSocketClose(int statusCode, String reason, Callback callback) {
            Session current = session;
            if (current != null) {
                chat.leave(current, nick);
            }
            callback.succeed();
        }
    }
}
