package dev.wsproxy;

import static dev.wsproxy.RawWebSocket.assertCloseFrame;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.io.BufferedInputStream;
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
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * {@code stop(drain)} while a peer ignores the proxy's {@code 1001} (matrix row D2), one session at a time, each peer
 * a raw socket so that every thread left after the stop would be the proxy's.
 *
 * <p>A peer that reads its {@code 1001} and never answers holds nothing up: {@code 1001} is an error close to Jetty,
 * which drops the connection as soon as the frame is written, without waiting for an answer (docs/design.md, "Close:
 * the state machine"), so {@code stop} returns well before its deadline, the peer reads its close frame and then the
 * end of the stream, and the other peer has its {@code 1001} too. That holds for a client and for a backend.
 *
 * <p>A peer that reads nothing (its receive buffer full, so the close frame cannot be written) is what the deadline is
 * for: {@code stop} waits for it until the deadline, never returns before (the session cannot end earlier), then drops
 * the connection, and returns soon after. The peer, once it reads again, finds the data that was on its way and then
 * the end of the stream, with no close frame; the other peer got its {@code 1001} at once. {@link ShutdownTest} drops
 * a client that does not read beside a healthy session; here the stalled peer's other leg is checked as well, and
 * the same is done for a backend that does not read while the client writes.
 *
 * <p>After each stop the proxy holds no session, connection slot or backend count, and every thread started since
 * just before the proxy started has ended.
 */
class StopDeadlineTest {

    /** The deadline of a stop that has to wait for it. */
    private static final Duration DRAIN = Duration.ofSeconds(2);
    /** The deadline of a stop that must not wait for it. */
    private static final Duration LONG_DRAIN = Duration.ofSeconds(10);
    /** How early a stop may return before its deadline: the drain waits in whole milliseconds. */
    private static final Duration WHOLE_MILLISECONDS = Duration.ofMillis(1);
    private static final int FRAME_SIZE = 64 * 1024;
    /** The most frames a peer pushes to one that does not read: 256 MiB, far more than the buffers between them. */
    private static final int MAX_FRAMES = 4096;

    private final List<AutoCloseable> resources = new ArrayList<>();
    private final Thaw thaw = new Thaw();
    /**
     * What the backend's reading side saw: each frame ({@code text:TEXT}, {@code data}, {@code close:CODE REASON}),
     * then how its stream ended ({@code eof}, {@code reset}).
     */
    private final BlockingQueue<String> backendSaw = new LinkedBlockingQueue<>();
    private WebSocketProxy proxy;
    /** A peer's writes to one that reads nothing. */
    private Writes push;
    private Set<Thread> baseline;

    @AfterEach
    void stop() throws Exception {
        thaw.release();
        try {
            Clients.stopAfterLeakCheck(proxy, resources);
        } finally {
            if (push != null) {
                push.join(Duration.ofSeconds(10));
            }
        }
    }

    // ---- a peer that reads its 1001 and never answers ----

    @Test
    void returnsWellBeforeTheDeadlineWhenAClientReadsItsCloseFrameAndNeverAnswers() throws Exception {
        // A backend that answers its close frame and then closes its socket, as a WebSocket server does.
        RawBackend backend = start(RawBackend.answering(RawBackend.switching(null)));
        try (RawWebSocket client = RawWebSocket.connect(Clients.ws(proxy, "/ignoring"))) {
            client.send(true, RawWebSocket.TEXT, "hello".getBytes(StandardCharsets.UTF_8));
            assertThat(client.read().text()).isEqualTo("hello");

            Duration took = stop(LONG_DRAIN);

            assertThat(took).as("stop() with a %s drain", LONG_DRAIN).isLessThan(LONG_DRAIN.dividedBy(2));
            // The client reads its close frame and never answers: its connection ends all the same.
            assertCloseFrame(client.read(), 1001, "proxy shutting down");
            assertEndOfStream(client);
            assertThat(backend.nextEnd(10)).isEqualTo("close:1001");
        }
        RawFrames.Frame close = backend.frames.stream().filter(frame -> frame.opcode() == RawFrames.CLOSE)
                .findFirst().orElseThrow();
        assertThat(close.closeReason()).isEqualTo("proxy shutting down");
        assertNothingLeft(backend);
    }

    @Test
    void returnsWellBeforeTheDeadlineWhenABackendReadsItsCloseFrameAndNeverAnswers() throws Exception {
        RawBackend backend = start(RawBackend.upgradingThen(this::readUntilTheEnd));
        try (RawWebSocket client = RawWebSocket.connect(Clients.ws(proxy, "/ignored"))) {
            client.send(true, RawWebSocket.TEXT, "hello".getBytes(StandardCharsets.UTF_8));
            assertThat(client.read().text()).isEqualTo("hello");
            assertThat(backendSaw.poll(10, TimeUnit.SECONDS)).isEqualTo("text:hello");

            Duration took = stop(LONG_DRAIN);

            assertThat(took).as("stop() with a %s drain", LONG_DRAIN).isLessThan(LONG_DRAIN.dividedBy(2));
            // The backend reads its close frame and never answers: its connection ends all the same.
            assertThat(backendSaw.poll(10, TimeUnit.SECONDS)).isEqualTo("close:1001 proxy shutting down");
            assertThat(backendSaw.poll(10, TimeUnit.SECONDS)).isEqualTo("eof");
            assertCloseFrame(client.read(), 1001, "proxy shutting down");
            client.answerClose(1001);
            assertEndOfStream(client);
        }
        assertNothingLeft(backend);
    }

    // ---- a peer that reads nothing ----

    @Test
    void dropsAClientThatDoesNotReadAtTheDeadlineAndGivesItsBackendA1001AtOnce() throws Exception {
        byte[] frame = RawFrames.encode(RawFrames.BINARY, new byte[FRAME_SIZE], false);
        CompletableFuture<Writes> backendPush = new CompletableFuture<>();
        RawBackend backend = start(RawBackend.upgradingThen((socket, out) -> {
            backendPush.complete(Writes.start("backend-pushes", MAX_FRAMES, i -> out.write(frame)));
            readUntilTheEnd(socket, out);
        }));
        try (RawWebSocket client = RawWebSocket.connect(Clients.ws(proxy, "/stalled"), 16 * 1024)) {
            push = backendPush.get(10, TimeUnit.SECONDS);
            push.awaitHeldBack("the backend's push", Duration.ofSeconds(30));

            Duration took = stop(DRAIN);

            assertThat(took).as("stop() with a %s drain", DRAIN)
                    .isGreaterThanOrEqualTo(DRAIN.minus(WHOLE_MILLISECONDS)).isLessThan(DRAIN.plusSeconds(5));
            // The backend got its 1001 at once; its writes fail once the proxy has stopped.
            assertThat(backendSaw.poll(10, TimeUnit.SECONDS)).isEqualTo("close:1001 proxy shutting down");
            assertThat(push.done).failsWithin(Duration.ofSeconds(10));
            // The client reads what was on its way, then the end of its connection: no close frame ever came.
            long read = readDataUntilTheEnd(client);
            assertThat(read).as("bytes the client read").isPositive().isLessThanOrEqualTo(push.written() * FRAME_SIZE);
        }
        assertNothingLeft(backend);
    }

    @Test
    void dropsABackendThatDoesNotReadAtTheDeadlineAndGivesItsClientA1001AtOnce() throws Exception {
        RawBackend backend = start(RawBackend.upgradingThen(this::readAfterTheThaw));
        try (RawWebSocket client = RawWebSocket.connect(Clients.ws(proxy, "/stalled"))) {
            pushUntilHeldBack(client);

            Duration took = stop(DRAIN);

            assertThat(took).as("stop() with a %s drain", DRAIN)
                    .isGreaterThanOrEqualTo(DRAIN.minus(WHOLE_MILLISECONDS)).isLessThan(DRAIN.plusSeconds(5));
            assertCloseFrame(client.read(), 1001, "proxy shutting down");
            assertThat(push.done).failsWithin(Duration.ofSeconds(10));
            // The backend reads again: the frames that were on their way, then the end of the stream, no close frame.
            thaw.release();
            long frames = 0;
            String saw;
            while ((saw = backendSaw.poll(10, TimeUnit.SECONDS)) != null && saw.equals("data")) {
                frames++;
            }
            assertThat(saw).as("how the backend's stream ended, after %s data frames", frames).isEqualTo("eof");
            assertThat(frames).as("data frames the backend read").isPositive();
        }
        assertNothingLeft(backend);
    }

    @Test
    void aSecondStopCutsTheDrainOfTheFirstShort() throws Exception {
        RawBackend backend = start(RawBackend.upgradingThen(this::readAfterTheThaw));
        try (RawWebSocket client = RawWebSocket.connect(Clients.ws(proxy, "/stalled"))) {
            pushUntilHeldBack(client);
            CompletableFuture<Void> first = CompletableFuture.runAsync(() -> proxy.stop(Duration.ofMinutes(10)));
            // The drain has begun: the client has its 1001, the backend that reads nothing holds the session.
            assertCloseFrame(client.read(), 1001, "proxy shutting down");

            proxy.stop(Duration.ZERO);

            assertThat(first).as("the first stop(), its 10-minute drain cut short").succeedsWithin(LONG_DRAIN);
            assertThat(push.done).failsWithin(Duration.ofSeconds(10));
            thaw.release();
        }
        assertNothingLeft(backend);
    }

    // ---- set-up and helpers ----

    /** Starts a proxy to {@code backend}, taking the threads alive just before as the baseline. */
    private RawBackend start(RawBackend backend) throws IOException {
        resources.add(backend);
        baseline = new HashSet<>(Thread.getAllStackTraces().keySet());
        proxy = ProxyBuilder.create().listen("127.0.0.1", 0).route("/", backend.backend()).build();
        proxy.start();
        return backend;
    }

    /** A backend that reads nothing until {@link #thaw} is released, then as {@link #readUntilTheEnd}. */
    private void readAfterTheThaw(Socket socket, OutputStream out) throws IOException {
        thaw.await();
        readUntilTheEnd(socket, out);
    }

    /** Makes {@code client} push binary frames until the backend that reads nothing holds them back. */
    private void pushUntilHeldBack(RawWebSocket client) throws Exception {
        byte[] frame = RawFrames.encode(RawFrames.BINARY, new byte[FRAME_SIZE], true);
        push = Writes.start("client-pushes", MAX_FRAMES, i -> client.sendRaw(frame));
        push.awaitHeldBack("the client's push", Duration.ofSeconds(30));
    }

    /** Stops the proxy on a thread of its own, to fail instead of hanging; returns how long the stop took. */
    private Duration stop(Duration drain) throws InterruptedException {
        long start = System.nanoTime();
        long[] end = {0};
        Thread stopping = new Thread(() -> {
            proxy.stop(drain);
            end[0] = System.nanoTime();
        }, "stopping");
        stopping.start();
        stopping.join(drain.plusSeconds(10).toMillis());
        assertThat(stopping.isAlive()).as("stop() still running %s after its deadline", Duration.ofSeconds(10))
                .isFalse();
        return Duration.ofNanos(end[0] - start);
    }

    /**
     * The backend's reading side: records each frame and how the stream ended in {@link #backendSaw}; echoes text
     * frames, never answers a close frame and never closes its socket.
     */
    private void readUntilTheEnd(Socket socket, OutputStream out) {
        try {
            InputStream in = new BufferedInputStream(socket.getInputStream(), 64 * 1024);
            socket.setSoTimeout(30_000);
            while (true) {
                RawFrames.Frame frame = RawFrames.read(in);
                switch (frame.opcode()) {
                    case RawFrames.TEXT -> {
                        backendSaw.add("text:" + frame.text());
                        RawFrames.write(out, RawFrames.encode(RawFrames.TEXT, frame.payload(), false));
                    }
                    case RawFrames.CLOSE -> backendSaw.add("close:" + frame.closeCode() + " " + frame.closeReason());
                    case RawFrames.BINARY, RawFrames.CONTINUATION -> backendSaw.add("data");
                    default -> backendSaw.add(frame.toString());
                }
            }
        } catch (EOFException e) {
            backendSaw.add("eof");
        } catch (SocketTimeoutException e) {
            backendSaw.add("still open after 30 s");
        } catch (IOException e) {
            backendSaw.add(e instanceof SocketException ? "reset" : e.toString());
        }
    }

    /** The client's stream ends, with no frame before. */
    private static void assertEndOfStream(RawWebSocket client) {
        assertThatThrownBy(client::read).as("the client's next read").isInstanceOf(EOFException.class);
    }

    /** Reads the client's data frames until its stream ends; fails on a close frame; returns the payload bytes. */
    private static long readDataUntilTheEnd(RawWebSocket client) {
        long bytes = 0;
        try {
            for (int i = 0; i <= MAX_FRAMES * 2; i++) {
                RawWebSocket.Frame frame = client.read();
                assertThat(frame.opcode()).as("frame %s", i).isIn(RawWebSocket.BINARY, RawWebSocket.CONTINUATION);
                bytes += frame.payload().length;
            }
            throw new AssertionError("more frames than were pushed");
        } catch (EOFException e) {
            return bytes;
        } catch (IOException e) {
            throw new AssertionError("the client's stream did not end after " + bytes + " bytes", e);
        }
    }

    /** Nothing held by the proxy (checked again by the tear-down), and no thread started since the proxy. */
    private void assertNothingLeft(RawBackend backend) throws Exception {
        Clients.assertNoLeaks(proxy, null);
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() ->
                assertThat(backend.openConnections()).as("backend connections").isZero());
        // Polled on this thread: Awaitility's own polling thread would be one started since the baseline.
        await().atMost(Duration.ofSeconds(10)).pollInSameThread().untilAsserted(() ->
                assertThat(Thread.getAllStackTraces().keySet().stream().filter(Thread::isAlive)
                        .filter(thread -> !baseline.contains(thread)).map(Thread::getName).sorted().toList())
                        .as("threads started since the proxy").isEmpty());
    }

}
