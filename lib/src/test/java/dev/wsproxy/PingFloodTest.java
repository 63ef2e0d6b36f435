package dev.wsproxy;

import static dev.wsproxy.RawFrames.assertCloseFrame;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * A ping flood from a client that never reads its pongs (matrix row F11), against a backend that answers every ping
 * with a pong.
 *
 * <p>Without a rate limit the flood is bounded by demand alone: the proxy relays one frame at a time in each
 * direction, so once the client's receive buffer is full the pongs back up into the proxy, the proxy's backend leg
 * stops reading, the backend blocks writing its pongs and stops reading pings, and the proxy's client leg stops
 * reading in turn, until the client's own writes block. The backend here is a raw socket that writes each pong (a
 * blocking write) before it reads the next frame, so that every buffer on the loop fills; a Jetty backend would
 * instead queue its pongs without bound in its own memory and keep reading. The proxy runs in a forked JVM with a
 * 64 MiB heap ({@link ForkedProxy}): the client writes up to 2,000,000 pings of 125 bytes (262 MB on the wire) from a
 * thread of its own, and must be held back far short of that with the proxy's heap bounded; a proxy that read on
 * regardless would buffer the pings or pongs it cannot write and die of an OutOfMemoryError. While the flood is held
 * back the proxy still serves a new session; once the client reads again every ping has its pong, in order, and a
 * {@code 1000} close goes through end to end. A client that vanishes instead leaves the backend a {@code 1001} at
 * once: the proxy reads the backend again, dropping its pongs, so that the backend, blocked writing them, gets to read
 * its close frame (before the proxy's parser dropped what a closed session receives, Jetty refused those pongs and
 * the proxy stopped reading, and the backend was dropped at the close timeout, 10 s later, without its {@code 1001}).
 *
 * <p>With {@code messageRateLimit}, the same client is closed with {@code 1008 message rate exceeded} and the backend
 * with {@code 1001} as soon as it passes its burst, while it is still flooding and has not read a byte: the session
 * ends on the proxy without waiting for the client ({@link RelayLimitsTest} sends a single burst from a client that
 * reads, to a backend that answers nothing).
 *
 * <p>The same flood from the backend (F11 on the backend leg; the rate limit is the client leg's only): a backend that
 * pings as fast as its socket takes them and reads nothing, and a client that reads at its own pace, answering every
 * ping with a pong before it reads the next frame (as Jetty and browsers answer pings). The pongs back up into the
 * backend, the proxy stops reading the client, the client blocks writing a pong and reads no more pings, and the
 * backend is held back, with the proxy's heap bounded. Once the backend reads, every ping reaches the client and every
 * pong the backend, in order, and the backend's close goes through end to end; a backend that vanishes instead leaves
 * the client the pings the proxy had read, then {@code 1014}.
 */
class PingFloodTest {

    /** The most pings a client writes: 262 MB on the wire, four times the forked proxy's heap. */
    private static final int MAX_PINGS = 2_000_000;
    private static final int BATCH = 1_000;
    /** The largest control frame payload (RFC 6455 section 5.5): 8 bytes of sequence number, then padding. */
    private static final int PING_PAYLOAD = 125;

    private final List<AutoCloseable> resources = new ArrayList<>();
    private RawBackend backend;
    /** The backend of every session but a backend flood's. */
    private PongingPeer ponging;
    private FloodingBackend flooding;
    /** The client of a backend flood, which answers every ping. */
    private PongingPeer pongingClient;
    private ForkedProxy forked;
    private WebSocketProxy proxy;
    /** The flooding client, or the client of a flooding backend, and the flood: batches of {@value #BATCH} pings. */
    private RawWebSocket client;
    private Writes flood;
    /** The proxy's heap after a full GC, once the flood was held back. */
    private long heapHeldBack;

    @AfterEach
    void stop() throws Exception {
        try {
            if (flooding != null) {
                flooding.readNow.countDown();
            }
            if (flood != null) {
                flood.stop();
                if (!client.socket.isClosed()) {
                    client.abort();
                }
                flood.join(Duration.ofSeconds(10));
            }
        } finally {
            if (forked != null) {
                forked.close();
            }
            Clients.stopAfterLeakCheck(proxy, resources);
        }
    }

    @Test
    void holdsBackAPingFloodWhoseSenderNeverReadsAndDeliversEveryPongOnceItDoes() throws Exception {
        startForked();
        startFlood(forked.ws("/flood"), MAX_PINGS / BATCH);
        long heldBackAt = awaitHeldBack();

        assertServesANewSession(forked.ws("/other"));

        // The client stops flooding and reads: every ping it wrote has its pong, in order.
        flood.stop();
        InputStream in = new BufferedInputStream(client.socket.getInputStream(), 64 * 1024);
        long pongs = readPongsUntilTheFloodEnds(in);
        assertThat(flood.done).succeedsWithin(Duration.ofSeconds(10));
        assertThat(pongs).as("pongs read").isEqualTo(pingsWritten()).isGreaterThanOrEqualTo(heldBackAt);
        assertThat(ponging.pings.get()).as("pings the backend answered").isEqualTo(pongs);

        client.sendClose(1000, "done");
        RawFrames.Frame close = RawFrames.read(in);
        assertThat(close.opcode()).as("the frame after the last pong").isEqualTo(RawFrames.CLOSE);
        assertThat(close.closeCode()).isEqualTo(1000);
        assertThat(ponging.closes.poll(10, TimeUnit.SECONDS)).isEqualTo("1000 done");
        assertThat(in.read()).as("the end of the stream").isEqualTo(-1);
        assertThat(backend.nextEnd(10)).isEqualTo("eof");
        assertThat(forked.isAlive()).isTrue();
    }

    @Test
    void endsTheSessionWhenTheHeldBackClientVanishes() throws Exception {
        startForked();
        startFlood(forked.ws("/flood"), MAX_PINGS / BATCH);
        awaitHeldBack();

        client.abort();
        assertThat(flood.done).failsWithin(Duration.ofSeconds(10));
        // The pings the proxy had read are still relayed, their pongs dropped; then the backend hears of the loss.
        assertThat(ponging.closes.poll(10, TimeUnit.SECONDS)).isEqualTo("1001 client connection lost");
        assertThat(backend.nextEnd(10)).isEqualTo("eof");
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() ->
                assertThat(backend.openConnections()).as("backend connections").isZero());
        assertServesANewSession(forked.ws("/after"));
        forked.assertHeapBounded("once the flood ended");
    }

    @Test
    void closesAFloodingClientThatNeverReadsWith1008AtTheRateAndTheBackendWith1001() throws Exception {
        startPongingBackend();
        proxy = ProxyBuilder.create().listen("127.0.0.1", 0).route("/", backend.backend()).messageRateLimit(10)
                .build();
        proxy.start();
        startFlood(Clients.ws(proxy, "/flood"), 100);

        // The session ends on the proxy while the client floods and has read nothing.
        assertThat(ponging.closes.poll(10, TimeUnit.SECONDS)).isEqualTo("1001 client: message rate exceeded");
        Clients.assertNoLeaks(proxy, null);
        long relayed = ponging.pings.get();
        assertThat(relayed).as("pings relayed before the limit").isBetween(10L, 20L);
        assertThat(backend.nextEnd(10)).isEqualTo("eof");

        // The rest of the flood is read and discarded (the lingering close): every write of the client completes.
        assertThat(flood.done).as("the end of the client's flood").succeedsWithin(Duration.ofSeconds(15));
        InputStream in = new BufferedInputStream(client.socket.getInputStream(), 64 * 1024);
        long pongs = 0;
        RawFrames.Frame frame;
        while ((frame = RawFrames.read(in)).opcode() == RawFrames.PONG && pongs <= relayed) {
            assertThat(sequence(frame.payload())).as("pong %s", pongs).isEqualTo(pongs);
            pongs++;
        }
        assertThat(pongs).as("pongs before the close frame").isLessThanOrEqualTo(relayed);
        assertCloseFrame(frame, 1008, "message rate exceeded");
    }

    @Test
    void holdsBackAPingFloodFromABackendThatNeverReadsItsPongsAndDeliversEveryPingAndPong() throws Exception {
        startBackendFlood();
        long heldBackAt = awaitBackendHeldBack();

        assertServesANewSession(forked.ws("/other"));

        // The backend stops flooding and reads: every ping reached the client and every pong the backend, in order.
        flood.stop();
        flooding.readNow.countDown();
        assertThat(flood.done).succeedsWithin(Duration.ofSeconds(30));
        long written = pingsWritten();
        assertThat(written).isGreaterThanOrEqualTo(heldBackAt);
        await().atMost(Duration.ofSeconds(30)).until(() -> flooding.pongs.get() >= written || flooding.failed());
        assertThat(flooding.failure).as("what the backend read").isEmpty();
        assertThat(flooding.pongs.get()).as("pongs the backend read, in order").isEqualTo(written);
        assertThat(pongingClient.pings.get()).as("pings the client answered").isEqualTo(written);

        // The backend's close goes through end to end, after the last pong.
        RawFrames.write(flooding.out, RawFrames.close(1000, "done", false));
        assertThat(pongingClient.closes.poll(10, TimeUnit.SECONDS)).isEqualTo("1000 done");
        assertThat(flooding.closes.poll(10, TimeUnit.SECONDS)).as("the client's answer").isEqualTo("1000 done");
        assertThat(backend.nextEnd(10)).isEqualTo("eof");
        assertThat(forked.isAlive()).isTrue();
    }

    @Test
    void endsTheSessionWhenTheHeldBackBackendVanishes() throws Exception {
        startBackendFlood();
        awaitBackendHeldBack();

        flooding.vanish = true;
        flooding.readNow.countDown();
        assertThat(flood.done).failsWithin(Duration.ofSeconds(10));
        // The pings the proxy had read still reach the client, its pongs dropped; then it hears of the loss.
        assertThat(pongingClient.closes.poll(10, TimeUnit.SECONDS)).isEqualTo("1014 backend connection lost");
        assertThat(backend.nextEnd(10)).isEqualTo("reset");
        assertServesANewSession(forked.ws("/after"));
        forked.assertHeapBounded("once the flood ended");
    }

    // ---- set-up ----

    private void startPongingBackend() throws IOException {
        ponging = new PongingPeer(false);
        backend = RawBackend.upgradingThen(ponging);
        resources.add(backend);
    }

    /**
     * A forked proxy in front of a {@link FloodingBackend}, and a client whose {@link PongingPeer} answers on a thread
     * of its own; returns once the backend's flood has started.
     */
    private void startBackendFlood() throws Exception {
        ponging = new PongingPeer(false);
        flooding = new FloodingBackend();
        backend = RawBackend.upgradingThen(flooding);
        resources.add(backend);
        forked = ForkedProxy.start(backend.uri());
        client = RawWebSocket.connect(forked.ws("/backend-flood"), 16 * 1024);
        // A small send buffer: the pongs the client cannot write wait in the proxy's buffers, not in its own.
        client.socket.setSendBufferSize(64 * 1024);
        pongingClient = new PongingPeer(true);
        Thread answers = new Thread(() -> {
            try {
                pongingClient.run(client.socket, client.socket.getOutputStream());
            } catch (IOException e) {
                // The connection ended: what the client read is in its counters.
            }
        }, "client-pongs");
        answers.setDaemon(true);
        answers.start();
        flood = flooding.flood.get(10, TimeUnit.SECONDS);
    }

    /**
     * Waits until the backend's writes stop completing, and checks that the proxy held it back far short of the flood
     * with a bounded heap; returns the pings written by then.
     */
    private long awaitBackendHeldBack() throws IOException {
        long heldBackAt = awaitHeldBack("the backend's flood, held back", "pings the backend could write without"
                + " reading a pong", "while the backend's flood is held back");
        System.out.printf("backend ping flood: backend held back after %d pings (%d KiB), client answered %d; proxy"
                + " heap after GC %d KiB%n", heldBackAt, heldBackAt * (PING_PAYLOAD + 2) / 1024,
                pongingClient.pings.get(), heapHeldBack / 1024);
        return heldBackAt;
    }

    private void startForked() throws IOException {
        startPongingBackend();
        forked = ForkedProxy.start(backend.uri());
    }

    /**
     * Waits until the client's writes stop completing (two equal readings 500 ms apart), and checks that the proxy
     * held it back far short of the flood with a bounded heap; returns the pings written by then.
     */
    private long awaitHeldBack() throws IOException {
        long heldBackAt = awaitHeldBack("the client's flood, held back",
                "pings the client could write without reading a pong", "while the flood is held back");
        // Figures to compare with the slow readers' in docs/security.md.
        System.out.printf("ping flood: client held back after %d pings (%d KiB), backend answered %d; proxy heap"
                + " after GC %d KiB%n", heldBackAt, heldBackAt * (PING_PAYLOAD + 6) / 1024, ponging.pings.get(),
                heapHeldBack / 1024);
        return heldBackAt;
    }

    /**
     * Waits until the flood's writes stop completing (two equal readings 500 ms apart), checks the pings written and
     * the proxy's heap after a full GC, and waits for the writes to stop again: held back by the proxy far short of
     * the flood's end when they stopped at the same count, a stall with the heap bounded all along. Returns the pings
     * written by then, and leaves the heap in {@link #heapHeldBack}. A stall the writes get past was no hold: on a
     * loaded machine a pause of the forked proxy (cold code, a GC, no core for it) can leave the flood without a
     * completed write for half a second long before the buffers are full. Every stall must pass the same checks, and
     * the wait goes on within its 30 s. Before, such a stall failed the test ("pings written, after the proxy's full
     * GC") when the writes went on during the GC, and was taken for the hold when they did not.
     */
    private long awaitHeldBack(String what, String written, String when) throws IOException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        long heldBackAt = awaitStall(what, deadline);
        while (true) {
            // Half the flood, 131 MB, is more than every socket buffer on the way can hold, even at Linux's limits
            // raised to 32 MiB to receive: the peers' own buffers are small, and the proxy's four hold at most
            // 2 x 32 MiB + 2 x 4 MiB.
            assertThat(heldBackAt).as(written).isLessThan(MAX_PINGS / 2);
            heapHeldBack = forked.assertHeapBounded(when);
            long stalledAt = awaitStall(what, deadline);
            if (stalledAt == heldBackAt) {
                return heldBackAt;
            }
            heldBackAt = stalledAt;
        }
    }

    /** The pings written when the flood's writes next stop completing, before {@code deadline} (a nanoTime). */
    private long awaitStall(String what, long deadline) {
        return flood.awaitHeldBack(what, Duration.ofNanos(Math.max(deadline - System.nanoTime(), 1_000_000))) * BATCH;
    }

    /**
     * Reads the pongs of every ping the client wrote, checking their order, until the writer has ended and each of
     * its pings was answered; returns how many.
     */
    private long readPongsUntilTheFloodEnds(InputStream in) throws IOException {
        long pongs = 0;
        while (pongs < MAX_PINGS) {
            if (pongs == pingsWritten()) {
                // Every counted ping is answered. The writer may still be counting its last batch, whose pongs will
                // follow (with the pipeline drained, the batch fits in the socket buffers), or be ending.
                long answered = pongs;
                await().atMost(Duration.ofSeconds(10))
                        .until(() -> flood.done.isDone() || pingsWritten() > answered);
                if (pingsWritten() == answered) {
                    return pongs;
                }
            }
            RawFrames.Frame frame = RawFrames.read(in);
            assertThat(frame.opcode()).as("frame %s from the proxy", pongs).isEqualTo(RawFrames.PONG);
            assertThat(sequence(frame.payload())).as("pong %s", pongs).isEqualTo(pongs);
            pongs++;
        }
        return pongs;
    }

    /** A second client gets its message echoed and its close answered while the first is held back. */
    private void assertServesANewSession(URI uri) throws Exception {
        try (RawWebSocket other = RawWebSocket.connect(uri)) {
            other.send(true, RawWebSocket.TEXT, "still serving".getBytes(StandardCharsets.UTF_8));
            assertThat(other.read().text()).isEqualTo("still serving");
            other.sendClose(1000, "bye");
            assertThat(other.readClose().closeCode()).isEqualTo(1000);
        }
        assertThat(ponging.closes.poll(10, TimeUnit.SECONDS)).isEqualTo("1000 bye");
        assertThat(backend.nextEnd(10)).isEqualTo("eof");
    }

    private static byte[] ping(long sequence) {
        return ping(sequence, true);
    }

    /** A numbered ping; {@code masked} for a client's. */
    private static byte[] ping(long sequence, boolean masked) {
        byte[] payload = new byte[PING_PAYLOAD];
        ByteBuffer.wrap(payload).putLong(sequence);
        return RawFrames.encode(RawFrames.PING, payload, masked);
    }

    private static long sequence(byte[] payload) {
        assertThat(payload).as("a pong's payload").hasSize(PING_PAYLOAD);
        return ByteBuffer.wrap(payload).getLong();
    }

    /** Connects the flooding client and starts its writes: at most {@code batches} of {@value #BATCH} pings. */
    private void startFlood(URI uri, int batches) throws IOException {
        client = RawWebSocket.connect(uri, 16 * 1024);
        // A small send buffer: what the client writes waits in the proxy's buffers, not in its own.
        client.socket.setSendBufferSize(64 * 1024);
        flood = Writes.start("ping-flood", batches, batch -> {
            ByteArrayOutputStream pings = new ByteArrayOutputStream(BATCH * (PING_PAYLOAD + 6));
            for (int j = 0; j < BATCH; j++) {
                pings.writeBytes(ping((long) batch * BATCH + j));
            }
            client.sendRaw(pings.toByteArray());
        });
    }

    /** The pings of the batches whose write returned. */
    private long pingsWritten() {
        return flood.written() * BATCH;
    }

    /**
     * One peer's side of a connection after its {@code 101}: answers every ping with a pong, written before the next
     * frame is read (so a peer whose pongs cannot be written reads nothing), echoes whole data messages, and answers a
     * close frame with the same frame; then, as a backend, the raw backend waits for the proxy to close the connection.
     * A client's frames are masked.
     */
    private static final class PongingPeer implements RawBackend.AfterUpgrade {
        private final boolean masked;
        /** Pings answered, over all connections. */
        final AtomicLong pings = new AtomicLong();
        /** {@code CODE REASON} of each close frame the peer got. */
        final BlockingQueue<String> closes = new LinkedBlockingQueue<>();

        PongingPeer(boolean masked) {
            this.masked = masked;
        }

        @Override
        public void run(Socket socket, OutputStream socketOut) throws IOException {
            // Nothing follows the request head before the 101, so no byte is left in the raw backend's own buffer.
            // A small receive buffer: the pings the proxy could write to it are few (the pongs must back up first).
            socket.setReceiveBufferSize(64 * 1024);
            InputStream in = new BufferedInputStream(socket.getInputStream(), 64 * 1024);
            OutputStream out = new BufferedOutputStream(socketOut, 8 * 1024);
            while (true) {
                RawFrames.Frame frame;
                try {
                    frame = RawFrames.read(in);
                } catch (EOFException e) {
                    out.flush();
                    throw e;
                }
                switch (frame.opcode()) {
                    case RawFrames.PING -> {
                        out.write(RawFrames.encode(RawFrames.PONG, frame.payload(), masked));
                        pings.incrementAndGet();
                    }
                    case RawFrames.TEXT, RawFrames.BINARY -> out.write(
                            RawFrames.encode(frame.opcode(), frame.payload(), masked));
                    case RawFrames.CLOSE -> {
                        closes.add(frame.closeCode() + " " + frame.closeReason());
                        out.write(RawFrames.encode(RawFrames.CLOSE, frame.payload(), masked));
                        out.flush();
                        return;
                    }
                    default -> throw new IOException("unexpected frame: " + frame);
                }
                if (in.available() == 0) {
                    out.flush();
                }
            }
        }
    }

    /**
     * A backend whose first connection, after its {@code 101}, floods numbered pings from a thread of its own and
     * reads nothing until {@link #readNow}; then it reads the pongs, checking their order, up to a close frame (or,
     * with {@link #vanish}, resets its connection instead). Every other connection is {@link #ponging}'s.
     */
    private final class FloodingBackend implements RawBackend.AfterUpgrade {
        final CompletableFuture<Writes> flood = new CompletableFuture<>();
        final CountDownLatch readNow = new CountDownLatch(1);
        volatile boolean vanish;
        /** The flooded connection's output, for the test's close once the flood has ended. */
        volatile OutputStream out;
        /** Pongs read in order, and the first thing read that was not the next pong. */
        final AtomicLong pongs = new AtomicLong();
        final BlockingQueue<String> failure = new LinkedBlockingQueue<>();
        final BlockingQueue<String> closes = new LinkedBlockingQueue<>();
        private final AtomicInteger connections = new AtomicInteger();

        boolean failed() {
            return !failure.isEmpty();
        }

        @Override
        public void run(Socket socket, OutputStream socketOut) throws IOException {
            if (connections.getAndIncrement() > 0) {
                ponging.run(socket, socketOut);
                return;
            }
            // A small receive buffer: the pongs the proxy could write to it are few.
            socket.setReceiveBufferSize(64 * 1024);
            out = socketOut;
            flood.complete(Writes.start("backend-ping-flood", MAX_PINGS / BATCH, batch -> {
                ByteArrayOutputStream pings = new ByteArrayOutputStream(BATCH * (PING_PAYLOAD + 2));
                for (int j = 0; j < BATCH; j++) {
                    pings.writeBytes(ping((long) batch * BATCH + j, false));
                }
                socketOut.write(pings.toByteArray());
                socketOut.flush();
            }));
            try {
                readNow.await();
            } catch (InterruptedException e) {
                throw new IOException(e);
            }
            if (vanish) {
                socket.setSoLinger(true, 0);
                socket.close();
                return;
            }
            InputStream in = new BufferedInputStream(socket.getInputStream(), 64 * 1024);
            while (true) {
                RawFrames.Frame frame = RawFrames.read(in);
                if (frame.opcode() == RawFrames.CLOSE) {
                    closes.add(frame.closeCode() + " " + frame.closeReason());
                    return;
                }
                long expected = pongs.get();
                if (frame.opcode() != RawFrames.PONG || frame.payload().length != PING_PAYLOAD
                        || ByteBuffer.wrap(frame.payload()).getLong() != expected) {
                    failure.add("frame " + expected + ": " + frame + " instead of pong " + expected);
                    return;
                }
                pongs.incrementAndGet();
            }
        }
    }
}
