package dev.wsproxy;

import static dev.wsproxy.RawWebSocket.assertCloseFrame;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.BufferedInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.eclipse.jetty.http.HttpVersion;
import org.eclipse.jetty.server.HttpConnectionFactory;
import org.eclipse.jetty.server.ProxyConnectionFactory;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * A peer that keeps sending while it reads nothing: a client whose heartbeat thread pings every 20 ms while its
 * reader is stuck, a backend that pings while it reads nothing. Its connection is never idle (the proxy reads from it
 * all the time), so neither the idle timeout nor a keep-alive ping finds it; what does is the frame the proxy relays
 * to it, which waits to be written: after two ping intervals with pings on ({@code 1001 client not responding} or
 * {@code 1014 backend not responding} to the other peer), after the idle timeout without ({@code 1001 idle timeout},
 * as nginx's {@code proxy_send_timeout}). The peer's connection is dropped: it reads nothing, so no close frame could
 * reach it. Without that, each of these sessions stays open for as long as the peer sends. The verdicts come no
 * sooner than the timeout, also over TLS and behind a PROXY-protocol connector (end points over the socket's, whose
 * pending write the relay must find); and a client that sends and reads slowly but steadily, fast enough to drain the
 * socket buffers ahead of a write within the timeout, keeps its session over two timeouts.
 */
class SendingNonReaderTest {

    private static final Duration PING = Duration.ofMillis(200);
    private static final byte[] HEARTBEAT = "heartbeat".getBytes(StandardCharsets.US_ASCII);
    /** The most heartbeats a peer sends: 30 s of them, far beyond every verdict here. */
    private static final int MAX_HEARTBEATS = 1500;

    private final SessionEvents events = new SessionEvents();
    private final List<AutoCloseable> resources = new ArrayList<>();
    private final Thaw thaw = new Thaw();
    /** Paces the heartbeats. */
    private final ScheduledExecutorService pacer = pacer("heartbeats");
    /** Paces the slow reader's reads, on a thread of their own. */
    private final ScheduledExecutorService readPacer = pacer("slow-reads");
    private WebSocketProxy proxy;

    @AfterEach
    void stop() throws Exception {
        thaw.release();
        pacer.shutdownNow();
        readPacer.shutdownNow();
        Clients.stopAfterLeakCheck(proxy, resources);
    }

    @Test
    void dropsAClientThatPingsButReadsNothingAndClosesTheBackendWith1001() throws Exception {
        Broadcaster broadcaster = assertStuckReaderDropped(TimeoutPolicy.custom().ping(PING).idle(Duration.ofHours(1)),
                "1001 client not responding", PING.multipliedBy(2));
        assertThat(broadcaster.pingsRead.get()).as("the client's heartbeats relayed to the backend").isPositive();
    }

    @Test
    void closesTheBackendWith1001IdleTimeoutWithoutPingsWhenTheClientReadsNothingForTheIdleTimeout() throws Exception {
        assertStuckReaderDropped(TimeoutPolicy.custom().idle(Duration.ofSeconds(1)), "1001 idle timeout",
                Duration.ofSeconds(1));
    }

    @Test
    void dropsAClientThatPingsButReadsNothingOverTls() throws Exception {
        // The client leg's writes go through Jetty's TLS end point, whose own write waits for the socket's.
        Broadcaster broadcaster = new Broadcaster();
        RawBackend backend = RawBackend.upgradingThen(broadcaster);
        resources.add(backend);
        proxy = proxyBuilder(backend.backend(), TimeoutPolicy.custom().ping(PING).idle(Duration.ofHours(1)))
                .tls(ServerTls.keyStore(TestCertificates.LOCALHOST.keyStore(), TestCertificates.PASSWORD))
                .build();
        proxy.start();
        URI uri = proxy.uri().resolve("/stuck-tls-reader");
        assertStuckReaderDropped(broadcaster,
                () -> RawWebSocket.over(TestCertificates.LOCALHOST.socketTo(uri, 16 * 1024), uri),
                "1001 client not responding", PING.multipliedBy(2));
    }

    @Test
    void dropsAClientThatPingsButReadsNothingBehindAProxyProtocolConnector() throws Exception {
        // A load balancer in front speaks the PROXY protocol: the client leg's end point wraps the socket's.
        Broadcaster broadcaster = new Broadcaster();
        RawBackend backend = RawBackend.upgradingThen(broadcaster);
        resources.add(backend);
        proxy = proxyBuilder(backend.backend(), TimeoutPolicy.custom().ping(PING).idle(Duration.ofHours(1))).build();
        Server server = new Server(WebSocketProxy.threadPool());
        ServerConnector connector = WebSocketProxy.serverConnector(server,
                new ProxyConnectionFactory(HttpVersion.HTTP_1_1.asString()), new HttpConnectionFactory());
        connector.setHost("127.0.0.1");
        server.addConnector(connector);
        server.setHandler(proxy.handler());
        server.start();
        resources.add(server::stop);
        URI uri = URI.create("ws://127.0.0.1:" + connector.getLocalPort() + "/stuck-reader-behind-a-balancer");
        assertStuckReaderDropped(broadcaster, () -> {
            Socket socket = RawWebSocket.socketTo(uri, 16 * 1024);
            socket.getOutputStream().write("PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n"
                    .getBytes(StandardCharsets.US_ASCII));
            return RawWebSocket.over(socket, uri);
        }, "1001 client not responding", PING.multipliedBy(2));
        assertThat(events.opened.poll()).as("the session").isNotNull()
                .extracting(session -> session.clientAddress().getAddress().getHostAddress())
                .as("the client's address, from the PROXY line").isEqualTo("203.0.113.7");
    }

    @Test
    void dropsABackendThatPingsButReadsNothingAndClosesTheClientWith1014() throws Exception {
        CompletableFuture<Void> backendBeating = new CompletableFuture<>();
        RawBackend backend = RawBackend.upgradingThen((socket, out) -> {
            byte[] ping = RawFrames.encode(RawFrames.PING, HEARTBEAT, false);
            heartbeat(beat -> RawFrames.write(out, ping)).whenComplete((done, failure) ->
                    backendBeating.completeExceptionally(failure != null ? failure : new AssertionError("done")));
            // Reads nothing until the test ends.
            thaw.await();
        });
        resources.add(backend);
        startProxy(backend.backend(), TimeoutPolicy.custom().ping(PING).idle(Duration.ofHours(1)));
        try (RawWebSocket client = RawWebSocket.connect(Clients.ws(proxy, "/stuck-backend"))) {
            long connected = System.nanoTime();
            byte[] frame = RawFrames.encode(RawFrames.BINARY, new byte[64 * 1024], true);
            Writes writes = Writes.start("client-writes", 4096, i -> client.sendRaw(frame));

            // The client reads everything: the backend's heartbeats, relayed, and the proxy's own pings (the relay is
            // not reading from the client, so it is not judged for leaving them unanswered), then the close frame.
            RawWebSocket.Frame close;
            int heartbeatsRead = 0;
            while ((close = client.read()).opcode() == RawWebSocket.PING) {
                if (Arrays.equals(close.payload(), HEARTBEAT)) {
                    heartbeatsRead++;
                }
            }
            assertCloseFrame(close, 1014, "backend not responding");
            assertNotBefore(connected, PING.multipliedBy(2));
            // Long before the heartbeats end (30 s), after which the backend is quiet and its pings would find it.
            assertThat(Duration.ofNanos(System.nanoTime() - connected)).as("the verdict")
                    .isLessThan(Duration.ofSeconds(10));
            assertThat(heartbeatsRead).as("the backend's heartbeats relayed to the client").isPositive();
            assertProxyDropped(events.nextClose(), false);
            writes.awaitEnd("the client's writes", Duration.ofSeconds(10));
            assertThat(backendBeating).as("the backend's heartbeats, once its connection is gone")
                    .failsWithin(Duration.ofSeconds(10));
        }
        thaw.release();
        assertThat(backend.nextEnd(10)).as("the backend socket, closed by the proxy").isIn("eof", "reset");
    }

    @Test
    void keepsAClientThatSendsAndReadsSlowlyButSteadilyOverTwoWriteTimeouts() throws Exception {
        // Pings every second: a write may stay pending for 2 s. The client sends its heartbeats (so its frames look
        // at the proxy's pending write all the time, and its leg is never quiet enough to be pinged) and takes at
        // most 64 KiB every 20 ms: 3.2 MB/s, so that it drains even a socket send buffer grown to Linux's 4 MiB, of
        // which the kernel wakes a writer after about half, well within the timeout. 12 MiB at that pace take more
        // than 3.8 s: two write timeouts.
        Broadcaster broadcaster = new Broadcaster();
        startProxy(broadcaster, TimeoutPolicy.custom().ping(Duration.ofSeconds(1)).idle(Duration.ofHours(1)));
        try (RawWebSocket client = RawWebSocket.connect(Clients.ws(proxy, "/slow-reader"), 256 * 1024)) {
            long connected = System.nanoTime();
            CompletableFuture<Void> beating = heartbeat(beat -> client.send(true, RawWebSocket.PING, HEARTBEAT));
            CompletableFuture<Void> readEnough = paceReads(client.socket.getInputStream(), 12 * 1024 * 1024);

            assertThat(readEnough).succeedsWithin(Duration.ofSeconds(30));
            assertThat(Duration.ofNanos(System.nanoTime() - connected)).as("the slow reading")
                    .isGreaterThan(Duration.ofSeconds(3));
            assertThat(events.closes).as("sessions ended while the client read slowly").isEmpty();
            assertThat(broadcaster.closes).as("close frames the backend got").isEmpty();
            // The writes to the client were held back all along: MiBs waited in the buffers before it.
            assertThat(broadcaster.writes.written() * 64 * 1024 - 12 * 1024 * 1024)
                    .as("bytes the backend wrote beyond what the client read").isGreaterThan(1024 * 1024);
            assertThat(beating).isNotDone();

            client.abort();
            assertThat(broadcaster.closes.poll(10, TimeUnit.SECONDS)).isEqualTo("1001 client connection lost");
            assertThat(events.nextClose().initiator()).isEqualTo(SessionClose.Initiator.CLIENT);
        }
    }

    // ---- set-up and helpers ----

    /**
     * A client whose heartbeats go on while it reads nothing, behind a proxy with {@code timeouts}, in front of a
     * broadcasting backend: the backend gets {@code backendClose} no sooner than {@code timeout} after the connect,
     * the client's connection is dropped without a close frame and its heartbeats fail.
     */
    private Broadcaster assertStuckReaderDropped(TimeoutPolicy.Builder timeouts, String backendClose, Duration timeout)
            throws Exception {
        Broadcaster broadcaster = new Broadcaster();
        startProxy(broadcaster, timeouts);
        assertStuckReaderDropped(broadcaster, () -> RawWebSocket.connect(Clients.ws(proxy, "/stuck-reader"), 16 * 1024),
                backendClose, timeout);
        return broadcaster;
    }

    /** The same with a proxy started in front of {@code broadcaster}, and the client {@code connect} opens. */
    private void assertStuckReaderDropped(Broadcaster broadcaster, Callable<RawWebSocket> connect,
            String backendClose, Duration timeout) throws Exception {
        try (RawWebSocket client = connect.call()) {
            long connected = System.nanoTime();
            CompletableFuture<Void> beating = heartbeat(beat -> client.send(true, RawWebSocket.PING, HEARTBEAT));

            assertThat(broadcaster.closes.poll(10, TimeUnit.SECONDS)).as("the backend's close frame")
                    .isEqualTo(backendClose);
            assertNotBefore(connected, timeout);
            assertProxyDropped(events.nextClose(), true);
            assertThat(beating).as("the client's heartbeats, once its connection is gone")
                    .failsWithin(Duration.ofSeconds(10));
            assertDataThenTheEnd(client);
        }
    }

    private void startProxy(Broadcaster broadcaster, TimeoutPolicy.Builder timeouts) throws Exception {
        RawBackend backend = RawBackend.upgradingThen(broadcaster);
        resources.add(backend);
        startProxy(backend.backend(), timeouts);
    }

    private void startProxy(Backend backend, TimeoutPolicy.Builder timeouts) throws Exception {
        proxy = proxyBuilder(backend, timeouts).build();
        proxy.start();
    }

    private ProxyBuilder proxyBuilder(Backend backend, TimeoutPolicy.Builder timeouts) {
        return ProxyBuilder.create().listen("127.0.0.1", 0)
                .route("/", backend)
                .timeoutPolicy(timeouts.close(Duration.ofMillis(500)).build())
                .listener(events);
    }

    /**
     * Runs {@code write} every 20 ms, at most {@value #MAX_HEARTBEATS} times, on the heartbeat thread; the future
     * fails with the first write that fails.
     */
    private CompletableFuture<Void> heartbeat(Writes.Write write) {
        CompletableFuture<Void> beating = new CompletableFuture<>();
        AtomicInteger beats = new AtomicInteger();
        pacer.scheduleAtFixedRate(() -> {
            try {
                int beat = beats.getAndIncrement();
                if (beat >= MAX_HEARTBEATS) {
                    beating.complete(null);
                    throw new IllegalStateException("done"); // no further runs
                }
                write.run(beat);
            } catch (IOException e) {
                beating.completeExceptionally(e);
                throw new IllegalStateException(e); // no further runs
            }
        }, 0, 20, TimeUnit.MILLISECONDS);
        return beating;
    }

    /**
     * Reads at most 64 KiB every 20 ms on the read pacer's thread, raw bytes whatever the frames, until {@code total}
     * bytes; the future fails with the end of the stream or a failed read.
     */
    private CompletableFuture<Void> paceReads(InputStream in, long total) {
        CompletableFuture<Void> readEnough = new CompletableFuture<>();
        byte[] buffer = new byte[64 * 1024];
        long[] read = {0};
        readPacer.scheduleAtFixedRate(() -> {
            try {
                int n = in.read(buffer);
                if (n < 0) {
                    throw new EOFException("the end of the stream after " + read[0] + " bytes");
                }
                read[0] += n;
                if (read[0] >= total) {
                    readEnough.complete(null);
                    throw new IllegalStateException("done"); // no further runs
                }
            } catch (IOException e) {
                readEnough.completeExceptionally(e);
                throw new IllegalStateException(e); // no further runs
            }
        }, 0, 20, TimeUnit.MILLISECONDS);
        return readEnough;
    }

    private static ScheduledExecutorService pacer(String name) {
        return Executors.newSingleThreadScheduledExecutor(runnable -> {
            Thread thread = new Thread(runnable, name);
            thread.setDaemon(true);
            return thread;
        });
    }

    /** Fails if the proxy's verdict came sooner than {@code bound} after {@code sinceNanos}. */
    private static void assertNotBefore(long sinceNanos, Duration bound) {
        assertThat(Duration.ofNanos(System.nanoTime() - sinceNanos)).as("the verdict, no sooner than the timeout")
                .isGreaterThanOrEqualTo(bound);
    }

    /** The proxy ended the session, the peer that read nothing (the client or the backend) without a close frame. */
    private static void assertProxyDropped(SessionClose close, boolean client) {
        assertThat(close.initiator()).isEqualTo(SessionClose.Initiator.PROXY);
        assertThat(client ? close.clientCode() : close.backendCode()).as("no close frame from the dropped peer")
                .isEqualTo(1006);
    }

    /**
     * The client reads what reached it before its connection was dropped: data frames (the last perhaps cut short),
     * then the end of the stream or a reset, long before its 10 s read timeout; never a close frame.
     */
    private static void assertDataThenTheEnd(RawWebSocket client) {
        assertThatThrownBy(() -> {
            for (int i = 0; i < 100_000; i++) {
                assertThat(client.read().opcode()).as("frame %s", i)
                        .isIn(RawWebSocket.BINARY, RawWebSocket.CONTINUATION);
            }
        }).isInstanceOf(IOException.class).isNotInstanceOf(SocketTimeoutException.class);
    }

    /**
     * A backend that writes 64 KiB binary frames as fast as the proxy takes them, from a thread of its own, and reads
     * every frame meanwhile. At a close frame it stops writing, answers the close and reads to the end.
     */
    private static final class Broadcaster implements RawBackend.AfterUpgrade {
        final BlockingQueue<String> closes = new LinkedBlockingQueue<>();
        /** The client's heartbeats read (the proxy's own pings are not counted, nor answered). */
        final AtomicInteger pingsRead = new AtomicInteger();
        /** The writes of the last connection. */
        volatile Writes writes;

        @Override
        public void run(Socket socket, OutputStream out) throws IOException {
            byte[] frame = RawFrames.encode(RawFrames.BINARY, new byte[64 * 1024], false);
            Writes writes = Writes.start("backend-broadcast", 4096, i -> out.write(frame));
            this.writes = writes;
            InputStream in = new BufferedInputStream(socket.getInputStream(), 64 * 1024);
            while (true) {
                RawFrames.Frame read = RawFrames.read(in);
                if (read.opcode() == RawFrames.PING && Arrays.equals(read.payload(), HEARTBEAT)) {
                    pingsRead.incrementAndGet();
                } else if (read.opcode() == RawFrames.CLOSE) {
                    closes.add(read.closeCode() + " " + read.closeReason());
                    // The proxy reads on after its close frame, so the write under way completes.
                    writes.stop();
                    writes.awaitEnd("the backend's last write", Duration.ofSeconds(10));
                    RawFrames.write(out, RawFrames.encode(RawFrames.CLOSE, read.payload(), false));
                }
            }
        }
    }
}
