package dev.wsproxy;

import static dev.wsproxy.RawFrames.assertCloseFrame;
import static dev.wsproxy.RawWebSocket.assertCloseFrame;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.InputStream;
import java.net.SocketTimeoutException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A peer that stops dead after its {@code 101}, and a backend that reads but never writes (matrix rows C3 and C5), on
 * a proxy with an idle timeout of {@value #IDLE_MILLIS} ms and a close timeout of {@value #CLOSE_MILLIS} ms.
 *
 * <p>C3, both ways: one peer freezes (it neither reads nor writes, and keeps its socket open) while the other writes
 * 64 KiB frames to it, from a thread of its own, until its writes block: the proxy's write to the frozen peer has
 * stalled, and with one frame in flight per direction the proxy reads no more from the writer either. Both legs fall
 * silent and the idle timeout closes them. The writer gets {@code 1001 "idle timeout"} and then the end of its stream
 * (Jetty ends a connection right after writing a close frame with a code other than 1000 or 3000-4999, and the proxy
 * closes that socket with a lingering close, see {@code docs/design.md}): the proxy reads and discards what the writer
 * still sends, which releases its blocked write, until the linger ends. The frozen peer's close frame waits behind a data frame
 * that cannot leave, so its connection is dropped at the close timeout (or once its close frame could be written, if
 * the kernel takes a few more bytes in the meantime), and the session is freed. The frozen peer, thawed once the
 * session is gone, reads data frames, at most that close frame, and then the end of its stream or a reset.
 *
 * <p>Both sides of a stalled session are raw sockets read by a thread that does nothing else, so the test sees what
 * the proxy wrote.
 *
 * <p>C5 tests the semantics {@link TimeoutPolicy} documents: the idle timeout is per leg and counts bytes read
 * <em>or</em> written on that leg. A backend that reads what the client says and never answers is therefore not
 * idle: the proxy writes to it. The session outlives the idle timeout four times over while the client talks, and
 * both legs get {@code 1001 "idle timeout"} one idle timeout after the client falls silent too. (nginx's
 * {@code proxy_read_timeout} counts only reads from the backend and would close this session while the client
 * talks.) The client is paced by the backend's receipt of each message, a round trip through the proxy that needs
 * nothing from the backend; a ping would not do, as the proxy relays pings to the backend, which does not answer.
 */
class StalledPeerTest {

    static final long IDLE_MILLIS = 500;
    static final long CLOSE_MILLIS = 500;
    private static final Duration IDLE = Duration.ofMillis(IDLE_MILLIS);
    private static final int MESSAGE_SIZE = 64 * 1024;
    /** 64 MiB: far more than the buffers between the two peers hold, so the writer is always held back. */
    private static final int MESSAGES = 1024;

    private final SessionEvents events = new SessionEvents();
    private final BlockingQueue<ProxySession> opened = events.opened;
    private final BlockingQueue<SessionClose> closed = events.closes;
    private final List<AutoCloseable> resources = new ArrayList<>();
    private final Thaw thaw = new Thaw();
    private Clients clients;
    private WebSocketProxy proxy;

    @BeforeEach
    void start() throws Exception {
        clients = new Clients();
    }

    @AfterEach
    void stop() throws Exception {
        thaw.release();
        Clients.tearDown(proxy, clients, resources.toArray(AutoCloseable[]::new));
    }

    private void startProxy(Backend backend) throws Exception {
        proxy = ProxyBuilder.create().listen("127.0.0.1", 0)
                .route("/", backend)
                .timeoutPolicy(TimeoutPolicy.custom().idle(IDLE).close(Duration.ofMillis(CLOSE_MILLIS)).build())
                .listener(events)
                .build();
        proxy.start();
    }

    @Test
    void closesTheClientWith1001AndDropsABackendThatFreezesWhileTheClientSends() throws Exception {
        List<RawFrames.Frame> thawed = Collections.synchronizedList(new ArrayList<>());
        RawBackend backend = RawBackend.upgradingThen((socket, out) -> {
            // Frozen: no read, no write, the socket open, until the test thaws it. Then it reads what reached it, up
            // to an EOFException (recorded as "eof") or a SocketException ("reset").
            thaw.await();
            socket.setSoTimeout(10_000);
            InputStream in = socket.getInputStream();
            while (true) {
                thawed.add(withoutData(RawFrames.read(in)));
            }
        });
        resources.add(backend);
        startProxy(backend.backend());
        try (RawWebSocket client = RawWebSocket.connect(Clients.ws(proxy, "/frozen-backend"))) {
            byte[] frame = RawFrames.encode(RawFrames.BINARY, new byte[MESSAGE_SIZE], true);
            Writes writes = Writes.start("client-writes", MESSAGES, i -> client.sendRaw(frame));

            assertCloseFrame(client.read(), 1001, "idle timeout");
            long closedAt = System.nanoTime();
            assertThatThrownBy(client::read).as("the client's connection, dropped after its close frame")
                    .isInstanceOf(IOException.class).isNotInstanceOf(SocketTimeoutException.class);
            // The lingering close reads and discards what the client still writes, until the client is done or the
            // linger ends (a reset): the blocked write is released either way.
            assertWritesEnd(writes, "the client's blocked writes");

            // The backend's close frame cannot leave: its connection is dropped by the close timeout (the bound adds
            // a margin for a loaded machine), and the session ends. No close frame from either peer reached the proxy.
            SessionClose close = nextSessionClose(Duration.ofMillis(CLOSE_MILLIS).plusSeconds(4), closedAt);
            assertThat(close.initiator()).isEqualTo(SessionClose.Initiator.PROXY);
            assertThat(close.clientCode()).isEqualTo(1006);
            assertThat(close.backendCode()).isEqualTo(1006);
        }

        // The proxy closed its backend socket: thawed, the backend reads what reached it, then its end.
        thaw.release();
        assertThat(backend.nextEnd(10)).isIn("eof", "reset");
        assertDataThenAtMostAnIdleClose(thawed);
    }

    @Test
    void closesTheBackendWith1001AndDropsAClientThatFreezesWhileTheBackendSends() throws Exception {
        byte[] frame = RawFrames.encode(RawFrames.BINARY, new byte[MESSAGE_SIZE], false);
        CompletableFuture<Writes> backendWrites = new CompletableFuture<>();
        // The backend writes from a thread of its own; the fixture's thread reads and records what the proxy sends.
        RawBackend backend = RawBackend.upgradingThen((socket, out) -> backendWrites.complete(
                Writes.start("backend-writes", MESSAGES, i -> RawFrames.write(out, frame))));
        resources.add(backend);
        startProxy(backend.backend());
        try (RawWebSocket client = RawWebSocket.connect(Clients.ws(proxy, "/frozen-client"), 16 * 1024)) {
            // The client never reads until the session is gone.
            Writes writes = backendWrites.get(10, TimeUnit.SECONDS);

            RawFrames.Frame backendClose = backend.frames.poll(10, TimeUnit.SECONDS);
            assertThat(backendClose).as("the backend's first frame from the proxy").isNotNull();
            assertCloseFrame(backendClose, 1001, "idle timeout");
            long closedAt = System.nanoTime();
            assertWritesEnd(writes, "the backend's blocked writes");
            // The fixture answers the close frame, unless the connection is gone by then.
            assertThat(backend.nextEnd(5)).isIn("close:1001", "reset");

            SessionClose close = nextSessionClose(Duration.ofMillis(CLOSE_MILLIS).plusSeconds(4), closedAt);
            assertThat(close.initiator()).isEqualTo(SessionClose.Initiator.PROXY);
            assertThat(close.clientCode()).isEqualTo(1006);
            assertThat(close.backendCode()).isEqualTo(1006);

            // The proxy closed the client's socket: thawed, the client reads what reached it and then its end (or a
            // reset), long before its own 10 s read timeout.
            List<RawFrames.Frame> thawed = new ArrayList<>();
            assertThatThrownBy(() -> {
                for (int i = 0; i < 100_000; i++) {
                    RawWebSocket.Frame read = client.read();
                    thawed.add(withoutData(new RawFrames.Frame(read.opcode(), read.fin(), read.payload())));
                }
            }).isInstanceOf(IOException.class).isNotInstanceOf(SocketTimeoutException.class);
            assertDataThenAtMostAnIdleClose(thawed);
        }
    }

    @Test
    void keepsASilentBackendsSessionWhileTheClientTalksAndClosesBothLegsWith1001OnceItStops() throws Exception {
        RawBackend backend = RawBackend.recording();
        resources.add(backend);
        startProxy(backend.backend());
        WsRecorder client = clients.connect(Clients.ws(proxy, "/chatty"));
        ProxySession session = opened.poll(10, TimeUnit.SECONDS);
        assertThat(session).isNotNull();

        // Talk for four idle timeouts, each message paced by its arrival at the backend.
        long start = System.nanoTime();
        int sent = 0;
        while (System.nanoTime() - start < 4 * IDLE.toNanos()) {
            assertThat(sent).as("messages in four idle timeouts").isLessThan(200_000);
            client.sendText("m" + sent);
            RawFrames.Frame frame = backend.frames.poll(5, TimeUnit.SECONDS);
            assertThat(frame).as("message %d at the backend", sent).isNotNull();
            assertThat(frame.text()).isEqualTo("m" + sent);
            sent++;
        }
        long lastTraffic = System.nanoTime();
        assertThat(client.events).as("nothing from the backend, no close").isEmpty();
        assertThat(proxy.sessions()).containsExactly(session);

        // The client falls silent too: both legs are idle now.
        assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(1001, "idle timeout"));
        Duration quiet = Duration.ofNanos(System.nanoTime() - lastTraffic);
        // From the last message, not from the start of the session; the margins are for a loaded machine.
        assertThat(quiet).as("silence before the idle close").isBetween(IDLE.dividedBy(2), IDLE.plusMillis(2_500));
        RawFrames.Frame backendClose = backend.frames.poll(5, TimeUnit.SECONDS);
        assertThat(backendClose).isNotNull();
        assertCloseFrame(backendClose, 1001, "idle timeout");
        assertThat(backend.nextEnd(5)).isEqualTo("close:1001");

        assertThat(closed.poll(5, TimeUnit.SECONDS)).isNotNull()
                .extracting(SessionClose::initiator).isEqualTo(SessionClose.Initiator.PROXY);
        assertThat(session.clientToBackendMessages()).isEqualTo(sent);
        assertThat(session.backendToClientMessages()).isZero();
    }

    /**
     * Fails unless {@code writes} end, completed or failed, within the lingering close's 5 s and a margin: after the
     * close frame the proxy discards what the writer still sends, then resets the connection.
     */
    private static void assertWritesEnd(Writes writes, String what) {
        writes.awaitEnd(what, Duration.ofSeconds(10));
    }

    /** How the session ended; fails unless it ended within {@code bound} from {@code sinceNanos}. */
    private SessionClose nextSessionClose(Duration bound, long sinceNanos) throws InterruptedException {
        long left = bound.toNanos() - (System.nanoTime() - sinceNanos);
        SessionClose close = closed.poll(Math.max(left, 0), TimeUnit.NANOSECONDS);
        assertThat(close).as("the session ended within %s", bound).isNotNull();
        return close;
    }

    /** Data frames only, except that the last may be the proxy's {@code 1001 "idle timeout"}. */
    private static void assertDataThenAtMostAnIdleClose(List<RawFrames.Frame> frames) {
        int data = frames.size();
        if (!frames.isEmpty() && frames.get(frames.size() - 1).opcode() == RawFrames.CLOSE) {
            assertCloseFrame(frames.get(frames.size() - 1), 1001, "idle timeout");
            data--;
        }
        assertThat(frames.subList(0, data)).extracting(RawFrames.Frame::opcode)
                .allMatch(opcode -> opcode == RawFrames.BINARY || opcode == RawFrames.CONTINUATION);
    }

    /** The frame without its payload, unless it is a control frame: the stalled tests read megabytes. */
    private static RawFrames.Frame withoutData(RawFrames.Frame frame) {
        return frame.opcode() >= RawFrames.CLOSE ? frame
                : new RawFrames.Frame(frame.opcode(), frame.fin(), new byte[0]);
    }
}
