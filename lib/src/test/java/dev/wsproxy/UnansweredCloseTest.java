package dev.wsproxy;

import static dev.wsproxy.RawWebSocket.assertCloseFrame;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Matrix row C6, outside a stop (the stop's deadline is {@link StopDeadlineTest}'s): a peer that never answers the
 * close the proxy relayed to it, on a proxy with a close timeout of {@value #CLOSE_MILLIS} ms. The proxy drops that
 * peer's connection at the close timeout, and the other peer, which started the close and waits for its answer, gets
 * one from the proxy, as for a lost peer: the client {@code 1014 "backend connection lost"}, the backend {@code 1001
 * "client connection lost"}. Its close handshake completes instead of ending in a dropped connection, no sooner than
 * the close timeout, and the session ends; nothing hangs in {@code CLOSING}. A peer that cannot even take that answer
 * (it reads nothing) is dropped one more close timeout later.
 *
 * <p>Both peers are raw sockets: the backend a {@link RawBackend} whose script reads every frame and answers none, the
 * client a {@link RawWebSocket}, so the test sees every frame the proxy writes and the end of each connection.
 */
class UnansweredCloseTest {

    static final long CLOSE_MILLIS = 500;
    /** Beyond the timeouts, for a loaded machine. */
    private static final Duration MARGIN = Duration.ofSeconds(4);

    private final SessionEvents events = new SessionEvents();
    /** What the raw backend read: each frame (a close as {@code "close CODE REASON"}), then how its connection ends. */
    private final BlockingQueue<String> atBackend = new LinkedBlockingQueue<>();
    private RawBackend backend;
    private WebSocketProxy proxy;

    @AfterEach
    void stop() throws Exception {
        Clients.tearDown(proxy, null, backend);
    }

    private void start(RawBackend.AfterUpgrade script) throws Exception {
        backend = RawBackend.upgradingThen(script);
        proxy = ProxyBuilder.create().listen("127.0.0.1", 0)
                .route("/", backend.backend())
                .timeoutPolicy(TimeoutPolicy.custom().close(Duration.ofMillis(CLOSE_MILLIS)).build())
                .listener(events)
                .build();
        proxy.start();
    }

    @Test
    void answersTheClientsCloseWith1014AndDropsABackendThatNeverAnswersIt() throws Exception {
        start((socket, out) -> readEverythingAnswerNothing(socket));
        try (RawWebSocket client = RawWebSocket.connect(Clients.ws(proxy, "/backend-ignores-close"))) {
            client.send(true, RawWebSocket.TEXT, "hello".getBytes(StandardCharsets.UTF_8));
            assertThat(atBackend.poll(10, TimeUnit.SECONDS)).isEqualTo("hello");

            long closing = System.nanoTime();
            client.sendClose(1000, "bye");
            assertThat(atBackend.poll(10, TimeUnit.SECONDS)).as("the client's close, relayed")
                    .isEqualTo("close 1000 bye");
            assertCloseFrame(client.read(), 1014, "backend connection lost");
            Duration answeredAfter = Duration.ofNanos(System.nanoTime() - closing);
            assertThat(answeredAfter).as("the proxy's answer, at the close timeout")
                    .isBetween(Duration.ofMillis(CLOSE_MILLIS), Duration.ofMillis(CLOSE_MILLIS).plus(MARGIN));
            assertEnds(client);
        }
        assertThat(atBackend.poll(10, TimeUnit.SECONDS)).as("the backend's connection, dropped with no other frame")
                .isIn("eof", "reset");
        SessionClose close = events.nextClose();
        assertThat(List.of(close.initiator(), close.clientCode(), close.clientReason(), close.backendCode()))
                .containsExactly(SessionClose.Initiator.CLIENT, 1000, "bye", 1006);
    }

    @Test
    void answersTheBackendsCloseWith1001AndDropsAClientThatNeverAnswersIt() throws Exception {
        start((socket, out) -> {
            RawFrames.Frame go = RawFrames.read(socket.getInputStream());
            atBackend.add(go.text());
            RawFrames.write(out, RawFrames.close(4000, "bye", false));
            readEverythingAnswerNothing(socket);
        });
        try (RawWebSocket client = RawWebSocket.connect(Clients.ws(proxy, "/client-ignores-close"))) {
            // Before the backend's close, which the proxy times from: taken after it, the timeout could look short.
            long closing = System.nanoTime();
            client.send(true, RawWebSocket.TEXT, "go".getBytes(StandardCharsets.UTF_8));
            assertThat(atBackend.poll(10, TimeUnit.SECONDS)).isEqualTo("go");
            assertCloseFrame(client.read(), 4000, "bye");
            // Jetty half-closes after its close frame: the client reads the end of the stream, and no other frame.
            assertEnds(client);
            // The client never answers and keeps its socket open: the proxy drops it at the close timeout.
            assertThat(atBackend.poll(10, TimeUnit.SECONDS)).as("the proxy's answer to the backend's close")
                    .isEqualTo("close 1001 client connection lost");
            assertThat(Duration.ofNanos(System.nanoTime() - closing)).as("the answer, at the close timeout")
                    .isBetween(Duration.ofMillis(CLOSE_MILLIS), Duration.ofMillis(CLOSE_MILLIS).plus(MARGIN));
        }
        assertThat(atBackend.poll(10, TimeUnit.SECONDS)).as("the backend's connection, ended after the answer")
                .isIn("eof", "reset");
        SessionClose close = events.nextClose();
        assertThat(List.of(close.initiator(), close.clientCode(), close.backendCode(), close.backendReason()))
                .containsExactly(SessionClose.Initiator.BACKEND, 1006, 4000, "bye");
    }

    /**
     * The answer the proxy owes the client cannot be written: the backend filled the client's connection with data it
     * never reads before the client sent its close, and then never answered that close. The backend is dropped at the
     * close timeout, the client one close timeout later, and the session ends.
     */
    @Test
    void dropsAClientThatCannotTakeItsAnswerOneCloseTimeoutLater() throws Exception {
        List<Writes> floods = new ArrayList<>();
        start((socket, out) -> {
            byte[] frame = RawFrames.encode(RawFrames.BINARY, new byte[64 * 1024], false);
            synchronized (floods) {
                floods.add(Writes.start("backend-floods", 1024, i -> write(out, frame)));
                floods.notifyAll();
            }
            readEverythingAnswerNothing(socket);
        });
        try (RawWebSocket client = RawWebSocket.connect(Clients.ws(proxy, "/client-reads-nothing"), 4096)) {
            Writes flood = awaitFlood(floods);
            flood.awaitHeldBack("the backend's writes, held back by the client that reads nothing",
                    Duration.ofSeconds(20));

            long closing = System.nanoTime();
            client.sendClose(1000, "bye");
            assertThat(atBackend.poll(10, TimeUnit.SECONDS)).as("the client's close, relayed")
                    .isEqualTo("close 1000 bye");
            SessionClose close = events.nextClose();
            assertThat(Duration.ofNanos(System.nanoTime() - closing)).as("the session's end, two close timeouts on")
                    .isBetween(Duration.ofMillis(2 * CLOSE_MILLIS), Duration.ofMillis(2 * CLOSE_MILLIS).plus(MARGIN));
            assertThat(List.of(close.initiator(), close.clientCode(), close.backendCode()))
                    .containsExactly(SessionClose.Initiator.CLIENT, 1000, 1006);
            flood.awaitEnd("the backend's writes, failed by its dropped connection", Duration.ofSeconds(10));
            // What the client still reads is data the kernel had taken, then the end of its dropped connection.
            assertThatThrownBy(() -> {
                for (int frames = 0; frames < 10_000; frames++) {
                    client.read();
                }
            }).isInstanceOf(IOException.class).isNotInstanceOf(SocketTimeoutException.class);
        }
        assertThat(atBackend.poll(10, TimeUnit.SECONDS)).isIn("eof", "reset");
    }

    // ---- helpers ----

    /**
     * Run by the raw backend: records each frame the proxy sends, a close as {@code "close CODE REASON"}, and never
     * answers one; then records {@code "eof"} or {@code "reset"} when the proxy ends the connection.
     */
    private void readEverythingAnswerNothing(Socket socket) throws IOException {
        socket.setSoTimeout(20_000);
        InputStream in = socket.getInputStream();
        try {
            while (true) {
                RawFrames.Frame frame = RawFrames.read(in);
                atBackend.add(frame.opcode() == RawFrames.CLOSE
                        ? "close " + frame.closeCode() + " " + frame.closeReason() : frame.text());
            }
        } catch (EOFException e) {
            atBackend.add("eof");
        } catch (SocketException e) {
            atBackend.add("reset");
        }
    }

    private static void write(OutputStream out, byte[] frame) throws IOException {
        out.write(frame);
        out.flush();
    }

    private static Writes awaitFlood(List<Writes> floods) throws InterruptedException {
        synchronized (floods) {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (floods.isEmpty()) {
                long left = deadline - System.nanoTime();
                assertThat(left).as("the backend started writing").isPositive();
                floods.wait(TimeUnit.NANOSECONDS.toMillis(left) + 1);
            }
            return floods.get(0);
        }
    }

    /** The client's connection ends (an end of stream or a reset), with no frame before, well before a read timeout. */
    private static void assertEnds(RawWebSocket client) {
        assertThatThrownBy(client::read).as("the client's connection, ended").isInstanceOf(IOException.class)
                .isNotInstanceOf(SocketTimeoutException.class);
    }
}
