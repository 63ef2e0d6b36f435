package dev.wsproxy;

import static dev.wsproxy.RawFrames.bytes;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.lang.management.LockInfo;
import java.lang.management.ManagementFactory;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.eclipse.jetty.io.Connection;
import org.eclipse.jetty.websocket.api.Callback;
import org.eclipse.jetty.websocket.core.WebSocketConnection;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * What a session's access line says of how the proxy ended it: the code it sent the client ({@code proxy_close}) and
 * why ({@code reason}), for each end the relay decides, a frame Jetty's parser refuses from either peer included, and
 * {@code -} for both when a peer ended it. An in-process proxy; its lines are read on standard error, where
 * slf4j-simple writes them ({@link StandardError}). A raw backend ({@code /raw/}) writes {@link #backendFrames} after
 * its {@code 101}. A close that comes as the client's leg opens is held at that moment through the connector's
 * connection listeners and the relay's lock. The other hostile-input ends (each invalid frame from a client) are
 * {@link LogHygieneTest}'s.
 */
class AccessLogTest {

    private final SessionEvents events = new SessionEvents();
    private TestBackend backend;
    private RawBackend rawBackend;
    /** What the raw backend writes after its {@code 101}, before it echoes. */
    private volatile byte[] backendFrames = new byte[0];
    private WebSocketProxy proxy;
    private Clients clients;
    private StandardError.Capture log;

    @BeforeEach
    void start() throws Exception {
        backend = new TestBackend("b1");
        rawBackend = RawBackend.upgradingThen((socket, out) -> RawFrames.write(out, backendFrames));
        proxy = ProxyBuilder.create()
                .listen("127.0.0.1", 0)
                .route("/ws/", backend.backend())
                .route("/idle/", r -> r.backends(backend.backend())
                        .timeoutPolicy(TimeoutPolicy.idle(Duration.ofMillis(300))))
                .route("/lifetime/", r -> r.backends(backend.backend())
                        .timeoutPolicy(TimeoutPolicy.custom().maxLifetime(Duration.ofMillis(300)).build()))
                .route("/small/", r -> r.backends(backend.backend()).maxMessageSize(16))
                .route("/rate/", r -> r.backends(backend.backend()).messageRateLimit(1))
                .route("/fragments/", r -> r.backends(backend.backend()).maxFragmentsPerMessage(2))
                .route("/raw/", rawBackend.backend())
                .listener(events)
                .build();
        proxy.start();
        clients = new Clients();
        log = StandardError.capture();
    }

    @AfterEach
    void stop() throws Exception {
        log.close();
        Clients.tearDown(proxy, clients, backend, rawBackend);
    }

    /** Opens a session on {@code path}, runs {@code end}, and returns its access line once the session has ended. */
    private String sessionLine(String path, ClientAction end) throws Exception {
        WsRecorder client = clients.connect(Clients.ws(proxy, path));
        ProxySession session = nextOpened();
        end.run(client, session);
        return lineOf(session);
    }

    private ProxySession nextOpened() throws InterruptedException {
        ProxySession session = events.opened.poll(10, TimeUnit.SECONDS);
        assertThat(session).as("a session opened").isNotNull();
        return session;
    }

    /** The access line of {@code session}, once it is written. */
    private String lineOf(ProxySession session) {
        String prefix = "sid=" + session.id() + " ";
        await().atMost(Duration.ofSeconds(10)).until(() -> accessLines().stream().anyMatch(l -> l.startsWith(prefix)));
        return accessLines().stream().filter(line -> line.startsWith(prefix)).findFirst().orElseThrow();
    }

    /**
     * Opens a session from a raw client on {@code path}, which sends {@code frames} (if any), and returns its access line
     * once the client got {@code code}; the listener must name the proxy as who ended it, as the line does.
     */
    private String rawClientLine(String path, byte[] frames, int code) throws Exception {
        try (RawWebSocket client = RawWebSocket.connect(Clients.ws(proxy, path))) {
            ProxySession session = nextOpened();
            client.sendRaw(frames);
            assertThat(client.readClose().closeCode()).isEqualTo(code);
            assertThat(events.nextClose().initiator()).isEqualTo(SessionClose.Initiator.PROXY);
            return lineOf(session);
        }
    }

    /** Like {@link #rawClientLine} with {@code frames} from the raw backend instead: the client gets 1014. */
    private String backendFrameLine(byte[] frames) throws Exception {
        backendFrames = frames;
        return rawClientLine("/raw/x", new byte[0], 1014);
    }

    /** The messages of the access lines written so far. */
    private List<String> accessLines() {
        String marker = " dev.wsproxy.access - ";
        return log.text().lines().filter(line -> line.contains(marker))
                .map(line -> line.substring(line.indexOf(marker) + marker.length())).toList();
    }

    @FunctionalInterface
    interface ClientAction {
        void run(WsRecorder client, ProxySession session) throws Exception;
    }

    @Test
    void namesNoProxyCloseWhenAPeerEndedTheSession() throws Exception {
        String line = sessionLine("/ws/x", (client, session) -> {
            client.session.close(1000, "bye", Callback.NOOP);
            assertThat(client.nextClose().code()).isEqualTo(1000);
        });
        assertThat(line).endsWith(" client_close=1000 backend_close=1000 first=client status=101 proxy_close=- "
                + "reason=-");
    }

    @Test
    void namesTheApplicationsCloseAndItsCode() throws Exception {
        String line = sessionLine("/ws/x", (client, session) -> {
            session.close(4000, "kicked");
            assertThat(client.nextClose().code()).isEqualTo(4000);
        });
        assertThat(line).endsWith(" first=proxy status=101 proxy_close=4000 reason=closed_by_app");
    }

    @Test
    void namesTheIdleTimeout() throws Exception {
        String line = sessionLine("/idle/x", (client, session) ->
                assertThat(client.nextClose().code()).isEqualTo(1001));
        // Jetty ends a connection it sent a 1001 without reading the answer: both peers' codes are 1006.
        assertThat(line).endsWith(" client_close=1006 backend_close=1006 first=proxy status=101 proxy_close=1001 "
                + "reason=idle_timeout");
    }

    @Test
    void namesTheMaximumLifetime() throws Exception {
        String line = sessionLine("/lifetime/x", (client, session) ->
                assertThat(client.nextClose().code()).isEqualTo(1001));
        assertThat(line).endsWith(" first=proxy status=101 proxy_close=1001 reason=max_lifetime");
    }

    @Test
    void namesAMessageTooBigAndByItsCodeWhichPeerSentIt() throws Exception {
        String fromClient = sessionLine("/small/x", (client, session) -> {
            client.sendText("x".repeat(17));
            assertThat(client.nextClose().code()).isEqualTo(1009);
        });
        assertThat(fromClient).endsWith(" first=proxy status=101 proxy_close=1009 reason=message_too_big");
        // The backend broke the rule: the client is told 1001, the backend 1009.
        String fromBackend = sessionLine("/small/x", (client, session) -> {
            client.sendText("push:1:64");
            assertThat(client.nextClose().code()).isEqualTo(1001);
        });
        assertThat(fromBackend).endsWith(" first=proxy status=101 proxy_close=1001 reason=message_too_big");
    }

    @Test
    void namesTheMessageRateLimit() throws Exception {
        String line = sessionLine("/rate/x", (client, session) -> {
            for (int i = 0; i < 3; i++) {
                client.sendText("m" + i);
            }
            Object event;
            do {
                event = client.next(); // the echo of the first message, maybe of the second
            } while (event instanceof WsRecorder.Text);
            assertThat(event).isEqualTo(new WsRecorder.Closed(1008, "message rate exceeded"));
        });
        assertThat(line).endsWith(" first=proxy status=101 proxy_close=1008 reason=rate_limited");
    }

    @Test
    void namesTooManyFragments() throws Exception {
        // A text message in five one-byte frames, over a cap of two: 1009 to the client.
        byte[] fiveFrames = RawFrames.concat(bytes(0x01, 0x81, 0, 0, 0, 0, 'a'), bytes(0x00, 0x81, 0, 0, 0, 0, 'b'),
                bytes(0x00, 0x81, 0, 0, 0, 0, 'c'), bytes(0x00, 0x81, 0, 0, 0, 0, 'd'),
                bytes(0x80, 0x81, 0, 0, 0, 0, 'e'));
        assertThat(rawClientLine("/fragments/x", fiveFrames, 1009))
                .endsWith(" first=proxy status=101 proxy_close=1009 reason=too_many_fragments");
    }

    @Test
    void namesInvalidUtf8TheRelayFindsAcrossFragmentsFromEitherPeer() throws Exception {
        // A valid start (E2 82) whose third byte, in the next fragment, is not a continuation byte: Jetty's parser
        // lets both frames through, the relay's own check refuses the second.
        byte[] client = RawFrames.concat(bytes(0x01, 0x82, 0, 0, 0, 0, 0xE2, 0x82), bytes(0x80, 0x81, 0, 0, 0, 0, 0x28));
        assertThat(rawClientLine("/ws/x", client, 1007))
                .endsWith(" first=proxy status=101 proxy_close=1007 reason=invalid_utf8");
        // From the backend: 1007 to it, 1014 to the client.
        assertThat(backendFrameLine(RawFrames.concat(bytes(0x01, 0x02, 0xE2, 0x82), bytes(0x80, 0x01, 0x28))))
                .endsWith(" first=proxy status=101 proxy_close=1014 reason=invalid_utf8");
    }

    @Test
    void namesAStop() throws Exception {
        String line = sessionLine("/ws/x", (client, session) -> {
            proxy.stop(Duration.ofSeconds(5));
            assertThat(client.nextClose().code()).isEqualTo(1001);
        });
        // Jetty ends a connection it sent a 1001 without reading the answer: both peers' codes are 1006.
        assertThat(line).endsWith(" client_close=1006 backend_close=1006 first=proxy status=101 proxy_close=1001 "
                + "reason=shutdown");
    }

    @Test
    void namesABackendDrain() throws Exception {
        String line = sessionLine("/ws/x", (client, session) -> {
            proxy.drain(backend.backend(), Duration.ZERO);
            assertThat(client.nextClose().code()).isEqualTo(1001);
        });
        assertThat(line).endsWith(" first=proxy status=101 proxy_close=1001 reason=backend_draining");
    }

    @Test
    void namesAFrameJettysParserRefusesFromTheClientWithTheCodeTheClientGot() throws Exception {
        // Unmasked: the proxy ended the session, as for invalid UTF-8, not the client who sent it.
        assertThat(rawClientLine("/ws/x", bytes(0x81, 0x02, 'h', 'i'), 1002))
                .endsWith(" first=proxy status=101 proxy_close=1002 reason=protocol_error");
        // A 64-bit length with its top bit set, which Jetty refuses as too big.
        assertThat(rawClientLine("/ws/x", bytes(0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4), 1009))
                .endsWith(" first=proxy status=101 proxy_close=1009 reason=message_too_big");
        // A close reason that is not UTF-8, which Jetty checks (the relay checks text messages).
        assertThat(rawClientLine("/ws/x", bytes(0x88, 0x84, 0, 0, 0, 0, 0x0F, 0xA0, 0xC3, 0x28), 1007))
                .endsWith(" first=proxy status=101 proxy_close=1007 reason=invalid_utf8");
    }

    @Test
    void namesAFrameJettysParserRefusesFromTheBackendWithThe1014TheClientGot() throws Exception {
        // A masked frame from a server: 1002 to the backend, 1014 to the client.
        assertThat(backendFrameLine(bytes(0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2)))
                .endsWith(" first=proxy status=101 proxy_close=1014 reason=protocol_error");
        assertThat(backendFrameLine(bytes(0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0)))
                .endsWith(" first=proxy status=101 proxy_close=1014 reason=message_too_big");
        assertThat(backendFrameLine(bytes(0x88, 0x04, 0x0F, 0xA0, 0xC3, 0x28)))
                .endsWith(" first=proxy status=101 proxy_close=1014 reason=invalid_utf8");
    }

    @Test
    void reportsAndLogsASessionClosedWhileItsClientLegOpens() throws Exception {
        // The client's connection tells the connector's listeners it opened just before its leg opens: held there
        // until this thread holds the relay's lock, and then until the leg's open waits for that lock.
        CountDownLatch opening = new CountDownLatch(1);
        CountDownLatch resume = new CountDownLatch(1);
        Connection.Listener pause = new Connection.Listener() {
            @Override
            public void onOpened(Connection connection) {
                if (connection instanceof WebSocketConnection) {
                    opening.countDown();
                    try {
                        resume.await(10, TimeUnit.SECONDS);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
            }
        };
        proxy.handler().getServer().getConnectors()[0].addEventListener(pause);
        ProxySession relay;
        try (RawWebSocket client = RawWebSocket.connect(Clients.ws(proxy, "/ws/x"))) {
            assertThat(opening.await(10, TimeUnit.SECONDS)).as("the client's connection opening").isTrue();
            assertThat(proxy.sessions()).hasSize(1);
            relay = proxy.sessions().get(0);
            synchronized (relay) {
                resume.countDown();
                awaitBlockedAt(relay, "onClientOpened");
                // The close of a stop, a drain or the application, at that moment.
                relay.close(1001, "closed as it opens");
            }
            assertThat(client.readClose().closeCode()).isEqualTo(1001);
        }
        // The client got its 101 and then 1001: a session that opened and closed, reported and logged as such.
        assertThat(events.opened.poll(10, TimeUnit.SECONDS)).as("the session's open reported").isSameAs(relay);
        assertThat(events.nextClose().initiator()).isEqualTo(SessionClose.Initiator.PROXY);
        assertThat(lineOf(relay)).endsWith(" first=proxy status=101 proxy_close=1001 reason=closed_by_app");
    }

    /** Waits for a thread to wait for {@code relay}'s lock in the relay's {@code method}. */
    private static void awaitBlockedAt(Object relay, String method) {
        await().atMost(Duration.ofSeconds(10)).pollInterval(Duration.ofMillis(1)).until(() ->
                Arrays.stream(ManagementFactory.getThreadMXBean().dumpAllThreads(false, false, 1)).anyMatch(thread -> {
                    LockInfo waitedFor = thread.getLockInfo();
                    StackTraceElement[] stack = thread.getStackTrace();
                    return thread.getThreadState() == Thread.State.BLOCKED && waitedFor != null
                            && waitedFor.getIdentityHashCode() == System.identityHashCode(relay) && stack.length > 0
                            && stack[0].getMethodName().equals(method);
                }));
    }
}
