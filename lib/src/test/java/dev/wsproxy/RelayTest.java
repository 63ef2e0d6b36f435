package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

import org.eclipse.jetty.websocket.api.Callback;
import org.eclipse.jetty.websocket.api.Session;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Frames, flow and close codes through the proxy, on real Jetty servers and clients. */
class RelayTest {

    private final SessionEvents events = new SessionEvents();
    private final BlockingQueue<SessionClose> closes = events.closes;
    private final BlockingQueue<ProxySession> opened = events.opened;
    private TestBackend backend;
    private WebSocketProxy proxy;
    private Clients clients;

    @BeforeEach
    void start() throws Exception {
        backend = new TestBackend("b1");
        proxy = ProxyBuilder.create()
                .listen("127.0.0.1", 0)
                .route("/ws/", backend.backend())
                .maxMessageSize(32 * 1024 * 1024)
                .listener(events)
                .build();
        proxy.start();
        clients = new Clients();
    }

    @AfterEach
    void stop() throws Exception {
        Clients.tearDown(proxy, clients, backend);
    }

    private WsRecorder connect() throws Exception {
        return clients.connect(Clients.ws(proxy, "/ws/echo"));
    }

    @Test
    void echoesTextAndReportsTheSessionToListeners() throws Exception {
        WsRecorder client = connect();
        client.sendText("hello");
        assertThat(client.nextText()).isEqualTo("hello");
        ProxySession session = opened.poll(10, TimeUnit.SECONDS);
        assertThat(session).isNotNull();
        assertThat(session.backend()).isEqualTo(backend.backend());
        assertThat(session.route()).isEqualTo("/ws/");

        client.session.close(1000, "bye", Callback.NOOP);
        assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(1000, "bye"));
        assertThat(backend.nextClose()).isEqualTo(new TestBackend.Closed(1000, "bye"));
        SessionClose close = events.nextClose();
        assertThat(close.initiator()).isEqualTo(SessionClose.Initiator.CLIENT);
        assertThat(close.clientCode()).isEqualTo(1000);
        assertThat(close.backendCode()).isEqualTo(1000);
        assertThat(session.clientToBackendMessages()).isEqualTo(1);
        assertThat(session.clientToBackendBytes()).isEqualTo(5);
        assertThat(session.backendToClientMessages()).isEqualTo(1);
    }

    @Test
    void countsOnlyTheMessagesRelayedNotThoseDroppedAfterTheProxyClosedTheSession() throws Exception {
        // The relay counted each data frame as it arrived, before forwarding it, and forwarding drops frames once the
        // other leg is closed for output: the six messages below were counted, the backend read one.
        try (RawHttp client = RawHttp.connect(proxy)) {
            assertThat(client.exchange(RawHttp.Request.upgrade("/ws/echo", RawHttp.host(proxy))).status())
                    .isEqualTo(101);
            client.sendText("relayed");
            assertThat(client.readFrame().text()).isEqualTo("relayed");
            ProxySession session = opened.poll(10, TimeUnit.SECONDS);
            assertThat(session).isNotNull();
            // Sent to both legs on this thread: the backend's leg is closed for output when close returns.
            session.close(4000, "closed by the application");
            for (int i = 0; i < 5; i++) {
                client.sendText("dropped");
            }
            assertThat(client.closeHandshake(4000, "").closeCode()).isEqualTo(4000);
            events.nextClose();
            assertThat(backend.texts).containsExactly("relayed");
            assertThat(session.clientToBackendMessages()).isEqualTo(1);
            assertThat(session.clientToBackendBytes()).isEqualTo("relayed".length());
            assertThat(session.backendToClientMessages()).isEqualTo(1);
        }
    }

    @Test
    void reportsEachOpenBeforeItsCloseToEveryListenerWhenAListenerClosesTheSessionAsItOpens() throws Exception {
        // A listener that closes with an error code from onSessionOpened (a duplicate login kicked) ends both legs on
        // its own thread: the close was reported to every listener before the open reached the listeners after it,
        // so a registry adding on open and removing on close kept the session for ever.
        List<String> kickerSaw = new CopyOnWriteArrayList<>();
        List<String> recorderSaw = new CopyOnWriteArrayList<>();
        ProxyListener kicker = new ProxyListener() {
            @Override
            public void onSessionOpened(ProxySession session) {
                kickerSaw.add("open");
                session.close(1008, "kicked");
            }

            @Override
            public void onSessionClosed(ProxySession session, SessionClose close) {
                kickerSaw.add("close");
            }
        };
        ProxyListener recorder = new ProxyListener() {
            @Override
            public void onSessionOpened(ProxySession session) {
                recorderSaw.add("open");
            }

            @Override
            public void onSessionClosed(ProxySession session, SessionClose close) {
                recorderSaw.add("close");
            }
        };
        WebSocketProxy kicking = ProxyBuilder.create().listen("127.0.0.1", 0).route("/ws/", backend.backend())
                .listener(kicker).listener(recorder).build();
        try {
            kicking.start();
            for (int i = 0; i < 5; i++) {
                WsRecorder client = new WsRecorder();
                // Upgraded, then closed at once: the session may be closed by the time the connect completes.
                clients.client.connect(client, Clients.ws(kicking, "/ws/echo")).get(10, TimeUnit.SECONDS);
                assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(1008, "kicked"));
                int reported = 2 * (i + 1);
                await().atMost(Duration.ofSeconds(10)).until(() -> recorderSaw.size() >= reported);
            }
            List<String> inOrder = List.of("open", "close", "open", "close", "open", "close", "open", "close", "open",
                    "close");
            assertThat(recorderSaw).as("the listener after the one that closed").isEqualTo(inOrder);
            assertThat(kickerSaw).as("the listener that closed").isEqualTo(inOrder);
            Clients.assertNoLeaks(kicking, clients, backend);
        } finally {
            kicking.close();
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 125, 126, 65535, 65536, 65537, 1024 * 1024, 16 * 1024 * 1024})
    void echoesBinaryOfEverySize(int size) throws Exception {
        WsRecorder client = connect();
        byte[] payload = new byte[size];
        new Random(size).nextBytes(payload);
        client.session.sendBinary(ByteBuffer.wrap(payload), Callback.NOOP);
        assertThat(client.nextBinary()).isEqualTo(payload);
        client.session.close();
        client.nextClose();
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 125, 126, 65536, 1024 * 1024, 16 * 1024 * 1024})
    void echoesTextOfEverySize(int size) throws Exception {
        WsRecorder client = connect();
        StringBuilder text = new StringBuilder(size);
        Random random = new Random(size);
        while (text.length() < size) {
            text.append((char) ('a' + random.nextInt(26)));
        }
        client.sendText(text.toString());
        assertThat(client.nextText()).isEqualTo(text.toString());
        client.session.close();
        client.nextClose();
    }

    @Test
    void relaysFragmentedMessage() throws Exception {
        WsRecorder client = connect();
        client.session.sendPartialText("frag-", false, Callback.NOOP);
        client.session.sendPartialText("ment", false, Callback.NOOP);
        client.session.sendPartialText("ed", true, Callback.NOOP);
        assertThat(client.nextText()).isEqualTo("frag-mented");
        client.session.close();
        client.nextClose();
    }

    @Test
    void relaysUtf8SplitAcrossFragments() throws Exception {
        byte[] euro = "€ and 😀".getBytes(StandardCharsets.UTF_8); // 3-byte and 4-byte sequences
        try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(proxy, "/ws/raw"))) {
            raw.send(false, RawWebSocket.TEXT, new byte[] {euro[0]});
            raw.send(false, RawWebSocket.CONTINUATION, java.util.Arrays.copyOfRange(euro, 1, 8));
            raw.send(true, RawWebSocket.CONTINUATION, java.util.Arrays.copyOfRange(euro, 8, euro.length));
            RawWebSocket.Frame echo = raw.read();
            assertThat(echo.opcode()).isEqualTo(RawWebSocket.TEXT);
            assertThat(echo.text()).isEqualTo("€ and 😀");
            raw.sendClose(1000, "");
            assertThat(raw.readClose().closeCode()).isEqualTo(1000);
        }
    }

    @Test
    void closesClientWith1007AndBackendWith1001OnInvalidUtf8() throws Exception {
        try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(proxy, "/ws/raw"))) {
            raw.send(false, RawWebSocket.TEXT, "ok ".getBytes(StandardCharsets.UTF_8));
            raw.send(true, RawWebSocket.CONTINUATION, new byte[] {(byte) 0xED, (byte) 0xA0, (byte) 0x80}); // U+D800
            RawWebSocket.Frame close = raw.readClose();
            assertThat(close.closeCode()).isEqualTo(1007);
        }
        assertThat(backend.nextClose().code()).isEqualTo(1001);
        assertThat(backend.texts).as("the backend never got a completed message").isEmpty();
        assertThat(events.nextClose().initiator()).isEqualTo(SessionClose.Initiator.PROXY);
    }

    @Test
    void relaysPingsAndPongsBothWays() throws Exception {
        WsRecorder client = connect();
        client.session.sendPing(ByteBuffer.wrap("p1".getBytes(StandardCharsets.UTF_8)), Callback.NOOP);
        assertThat(client.next(WsRecorder.Pong.class).payload()).as("backend's pong relayed").isEqualTo("p1");

        client.sendText("ping:b1");
        assertThat(backend.pongs.poll(10, TimeUnit.SECONDS)).as("client's pong relayed").isEqualTo("b1");
        client.session.close();
        client.nextClose();
    }

    @Test
    void relaysClientCloseAndBackendReplyEndToEnd() throws Exception {
        WsRecorder client = connect();
        client.session.close(4000, "client-bye", Callback.NOOP);
        assertThat(backend.nextClose()).isEqualTo(new TestBackend.Closed(4000, "client-bye"));
        assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(4100, "backend-reply"));
        SessionClose close = events.nextClose();
        assertThat(close.clientCode()).isEqualTo(4000);
        assertThat(close.backendCode()).isEqualTo(4100);
        assertThat(close.backendReason()).isEqualTo("backend-reply");
    }

    @Test
    void relaysBackendCloseToClient() throws Exception {
        WsRecorder client = connect();
        client.sendText("close:4001:server-bye");
        assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(4001, "server-bye"));
        assertThat(events.nextClose().initiator()).isEqualTo(SessionClose.Initiator.BACKEND);
    }

    /** The first and last application close codes go through as they are, both ways (matrix F7). */
    @ParameterizedTest(name = "code {0}")
    @ValueSource(ints = {3000, 4999})
    void relaysTheEdgesOfTheApplicationCloseCodesBothWays(int code) throws Exception {
        WsRecorder client = connect();
        client.session.close(code, "from-client", Callback.NOOP);
        assertThat(backend.nextClose()).isEqualTo(new TestBackend.Closed(code, "from-client"));
        client.nextClose();

        WsRecorder second = connect();
        second.sendText("close:" + code + ":from-backend");
        assertThat(second.nextClose()).isEqualTo(new WsRecorder.Closed(code, "from-backend"));
    }

    /** A client that ends its stream without a close frame (FIN, no RST) is a lost client too (matrix M6). */
    @Test
    void closesBackendWith1001WhenClientEndsItsStreamWithoutACloseFrame() throws Exception {
        try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(proxy, "/ws/raw"))) {
            raw.send(true, RawWebSocket.TEXT, "hi".getBytes(StandardCharsets.UTF_8));
            assertThat(raw.read().text()).isEqualTo("hi");
            raw.socket.shutdownOutput();
            assertThat(backend.nextClose()).isEqualTo(new TestBackend.Closed(1001, "client connection lost"));
        }
        assertThat(events.nextClose().clientCode()).isEqualTo(1006);
    }

    @Test
    void relaysGoingAwayBothWays() throws Exception {
        WsRecorder client = connect();
        client.session.close(1001, "tab closed", Callback.NOOP);
        assertThat(backend.nextClose()).isEqualTo(new TestBackend.Closed(1001, "tab closed"));
        assertThat(client.nextClose().code()).isEqualTo(1001);

        WsRecorder second = connect();
        second.sendText("close:1001:restarting");
        assertThat(second.nextClose()).isEqualTo(new WsRecorder.Closed(1001, "restarting"));
    }

    @Test
    void relaysCloseWithoutCodeAsEmptyCloseFrame() throws Exception {
        try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(proxy, "/ws/raw"))) {
            raw.send(true, RawWebSocket.CLOSE, new byte[0]);
            assertThat(backend.nextClose().code()).isEqualTo(1005);
            RawWebSocket.Frame reply = raw.readClose();
            assertThat(reply.payload()).as("an empty close frame, not a made-up code").isEmpty();
        }
    }

    @Test
    void closesClientWith1014WhenBackendDropsTheConnection() throws Exception {
        WsRecorder client = connect();
        client.sendText("drop");
        WsRecorder.Closed close = client.nextClose();
        assertThat(close.code()).isEqualTo(1014);
        assertThat(close.reason()).isEqualTo("backend connection lost");
        SessionClose summary = events.nextClose();
        assertThat(summary.backendCode()).isEqualTo(1006);
        assertThat(summary.initiator()).isEqualTo(SessionClose.Initiator.BACKEND);
    }

    @Test
    void closesBackendWith1001WhenClientDropsTheConnection() throws Exception {
        RawWebSocket raw = RawWebSocket.connect(Clients.ws(proxy, "/ws/raw"));
        raw.send(true, RawWebSocket.TEXT, "hi".getBytes(StandardCharsets.UTF_8));
        assertThat(raw.read().text()).isEqualTo("hi");
        raw.abort();
        assertThat(backend.nextClose()).isEqualTo(new TestBackend.Closed(1001, "client connection lost"));
        assertThat(events.nextClose().clientCode()).isEqualTo(1006);
    }

    @Test
    void deliversTenThousandMessagesInOrder() throws Exception {
        WsRecorder client = connect();
        int count = 10_000;
        for (int i = 0; i < count; i++) {
            client.session.sendText("m" + i, Callback.NOOP);
        }
        for (int i = 0; i < count; i++) {
            assertThat(client.nextText()).isEqualTo("m" + i);
        }
        client.session.close();
        client.nextClose();
    }

    @Test
    void servesTwoHundredConcurrentSessions() throws Exception {
        List<WsRecorder> sessions = new ArrayList<>();
        for (int i = 0; i < 200; i++) {
            sessions.add(connect());
        }
        assertThat(proxy.sessions()).hasSize(200);
        for (int i = 0; i < sessions.size(); i++) {
            sessions.get(i).sendText("s" + i);
        }
        for (int i = 0; i < sessions.size(); i++) {
            assertThat(sessions.get(i).nextText()).isEqualTo("s" + i);
        }
        for (WsRecorder session : sessions) {
            session.session.close();
        }
        for (WsRecorder session : sessions) {
            assertThat(session.nextClose().code()).isEqualTo(1000);
        }
    }

    @Test
    void closesBothLegsWhenTheProxyClosesTheSession() throws Exception {
        WsRecorder client = connect();
        ProxySession session = opened.poll(10, TimeUnit.SECONDS);
        session.close(4002, "kicked");
        assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(4002, "kicked"));
        assertThat(backend.nextClose()).isEqualTo(new TestBackend.Closed(4002, "kicked"));
        assertThat(events.nextClose().initiator()).isEqualTo(SessionClose.Initiator.PROXY);
    }

    @Test
    void refusesAnUnsendableCloseNamingTheReasonsBytesAndLeavesTheSessionOpen() throws Exception {
        // The limit is 123 UTF-8 bytes, and the message gave the reason's length in chars: a 62-char reason of 'é'
        // (124 bytes) was refused as "62 chars (expected: at most 123 UTF-8 bytes)". A null reason failed with a bare
        // NullPointerException from inside the relay.
        WsRecorder client = connect();
        ProxySession session = opened.poll(10, TimeUnit.SECONDS);
        assertThatThrownBy(() -> session.close(1000, "\u00e9".repeat(62)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("reason: 124 UTF-8 bytes (expected: at most 123)");
        assertThatThrownBy(() -> session.close(1006, "lost")).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("code: 1006 (expected: 1000-1003, 1007-1014 or 3000-4999)");
        assertThatThrownBy(() -> session.close(1000, null)).isInstanceOf(NullPointerException.class)
                .hasMessage("reason");
        client.sendText("still open");
        assertThat(client.nextText()).isEqualTo("still open");

        session.close(4000, "\u00e9".repeat(61) + "!"); // 123 bytes: sent whole
        assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(4000, "\u00e9".repeat(61) + "!"));
        assertThat(backend.nextClose()).isEqualTo(new TestBackend.Closed(4000, "\u00e9".repeat(61) + "!"));
        assertThat(events.nextClose().initiator()).isEqualTo(SessionClose.Initiator.PROXY);
    }

    @Test
    void drainsOnStopWith1001OnBothLegs() throws Exception {
        WsRecorder client = connect();
        proxy.stop(java.time.Duration.ofSeconds(5));
        assertThat(client.nextClose().code()).isEqualTo(1001);
        assertThat(backend.nextClose().code()).isEqualTo(1001);
        assertThat(proxy.sessions()).isEmpty();
    }

    @Test
    void sessionIsUsableFromTheListenerCounters() throws Exception {
        Session jetty = connect().session;
        ProxySession session = opened.poll(10, TimeUnit.SECONDS);
        assertThat(session.id()).isNotBlank();
        assertThat(session.clientAddress().getAddress().isLoopbackAddress()).isTrue();
        assertThat(session.openedAt()).isBeforeOrEqualTo(java.time.Instant.now());
        jetty.close();
    }
}
