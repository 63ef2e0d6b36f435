package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import dev.wsproxy.internal.WebSocketEndPoints;

/**
 * A close frame with an error code (anything but 1000 and 3000-4999) reaches a peer that is still sending. Jetty drops
 * a connection right after writing such a close frame; a socket closed with bytes the proxy has not read is reset by
 * the kernel (RFC 2525), and a peer that is writing at that moment sees its write fail before it reads the close frame
 * waiting in its receive buffer: its WebSocket reports 1006 instead of the code the other peer or the proxy sent. The
 * proxy closes such a socket with a lingering close: its output shut down after the close frame, it reads and discards
 * what the peer still sends until the peer ends its stream, then closes.
 *
 * <p>Each test stalls the client-to-backend direction of a session, so that the client's bytes wait unread in the
 * proxy's socket: the client is a non-blocking socket that writes until the kernel takes no more and then waits for
 * the socket to turn writable again; two seconds without that is the stall (the backend never reads, so it lasts).
 * The backend's close then travels the free direction. The client must read the close frame and the end of the
 * stream, and its writes must go on completing (the proxy reads and discards them) until it closes its own socket;
 * without the lingering close they fail, the connection reset.
 */
class LingeringCloseTest {

    private static final int FRAME_SIZE = 64 * 1024;
    /** At most this much is written to stall a direction: far more than the socket buffers between the peers hold. */
    private static final long MAX_PUSHED = 512L * 1024 * 1024;

    private WebSocketProxy proxy;
    private NioBackend backend;
    private final List<AutoCloseable> resources = new ArrayList<>();

    private void start() throws IOException {
        backend = new NioBackend();
        resources.add(backend);
        proxy = ProxyBuilder.create().listen("127.0.0.1", 0).route("/", Backend.of(backend.uri()))
                .timeoutPolicy(TimeoutPolicy.custom().close(Duration.ofMillis(500)).build())
                .build();
        proxy.start();
    }

    @AfterEach
    void stop() throws Exception {
        Clients.stopAfterLeakCheck(proxy, resources);
    }

    @Test
    void aClientStillSendingReadsTheBackendsErrorCloseAndThenTheEndOfTheStream() throws Exception {
        start();
        SocketChannel client = connectClient();
        SocketChannel backendSide = backend.accepted.get(10, TimeUnit.SECONDS);
        // The backend never reads: the client's frames pile up until the proxy stops reading them.
        long pushed = pushUntilStalled(client, frame(RawFrames.BINARY, true));
        assertThat(pushed).as("bytes the client wrote before it stalled").isLessThan(MAX_PUSHED);

        writeFully(backendSide, RawFrames.close(1011, "backend broke", false));

        Ending ending = readUntilTheEnd(client);
        assertThat(ending.close().closeCode()).isEqualTo(1011);
        assertThat(ending.close().closeReason()).isEqualTo("backend broke");
        assertThat(ending.how()).as("how the client's stream ended after the close frame").isEqualTo("eof");
        assertStillWritable(client, frame(RawFrames.BINARY, true));
        client.close();
        backendSide.close();
    }

    @Test
    void lingeringSocketsCloseOnceThePeerEndsItsStream() throws Exception {
        start();
        SocketChannel client = connectClient();
        SocketChannel backendSide = lingerForTheClient(client);

        client.close();
        await().atMost(Duration.ofSeconds(4)).untilAsserted(() ->
                assertThat(WebSocketEndPoints.lingering()).as("sockets lingering once the client closed").isZero());
        backendSide.close();
    }

    @Test
    void lingeringSocketsCloseWhenTheProxyStops() throws Exception {
        start();
        SocketChannel client = connectClient();
        SocketChannel backendSide = lingerForTheClient(client);

        // Well before the linger's own 5 s: the stop closes the socket.
        proxy.close();
        assertThat(WebSocketEndPoints.lingering()).as("sockets lingering once the proxy stopped").isZero();
        assertThatThrownBy(() -> assertStillWritable(client, frame(RawFrames.BINARY, true)))
                .as("the client's writes once the proxy stopped").isInstanceOf(AssertionError.class);
        client.close();
        backendSide.close();
    }

    /**
     * Stalls {@code client}'s direction, has the backend close with 1011, and waits until the client read the end of
     * its stream and the proxy's socket lingers; returns the backend's socket.
     */
    private SocketChannel lingerForTheClient(SocketChannel client) throws Exception {
        SocketChannel backendSide = backend.accepted.get(10, TimeUnit.SECONDS);
        pushUntilStalled(client, frame(RawFrames.BINARY, true));
        writeFully(backendSide, RawFrames.close(1011, "backend broke", false));
        assertThat(readUntilTheEnd(client).how()).isEqualTo("eof");
        // Jetty shuts the output down right after the close frame, a moment before the socket begins to linger.
        await().atMost(Duration.ofSeconds(2)).untilAsserted(() -> assertThat(WebSocketEndPoints.lingering())
                .as("sockets lingering while the client holds its socket").isPositive());
        return backendSide;
    }

    @Test
    void aCloseHandshakeEndToEndLeavesNothingLingering() throws Exception {
        start();
        SocketChannel client = connectClient();
        SocketChannel backendSide = backend.accepted.get(10, TimeUnit.SECONDS);
        writeFully(client, RawFrames.close(1000, "done", true));
        // The backend reads the client's close and answers it: each peer sent its close frame, so neither socket
        // needs to linger when the proxy closes it.
        RawFrames.Frame relayed = RawFrames.read(backendSide.socket().getInputStream());
        assertThat(relayed.closeCode()).isEqualTo(1000);
        writeFully(backendSide, RawFrames.close(1000, "done too", false));
        Ending ending = readUntilTheEnd(client);
        assertThat(ending.close().closeReason()).isEqualTo("done too");
        assertThat(ending.how()).isEqualTo("eof");
        // Once the session has ended both sockets have been closed (or begun to linger).
        await().atMost(Duration.ofSeconds(5)).until(() -> proxy.sessions().isEmpty());
        assertThat(WebSocketEndPoints.lingering()).as("sockets lingering after a close handshake").isZero();
        client.close();
        backendSide.close();
    }

    // ---- the peers ----

    private SocketChannel connectClient() throws IOException {
        SocketChannel channel = SocketChannel.open(new InetSocketAddress("127.0.0.1", proxy.uri().getPort()));
        resources.add(channel);
        String request = "GET /lingering HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + RawFrames.SAMPLE_KEY + "\r\n\r\n";
        writeFully(channel, request.getBytes(StandardCharsets.US_ASCII));
        assertThat(readHead(channel)).startsWith("HTTP/1.1 101");
        return channel;
    }

    /** A bare backend: answers one upgrade with a {@code 101}, then leaves the socket to the test. */
    private static final class NioBackend implements AutoCloseable {

        final ServerSocketChannel server = ServerSocketChannel.open();
        final CompletableFuture<SocketChannel> accepted = new CompletableFuture<>();
        private final Thread thread;

        NioBackend() throws IOException {
            server.bind(new InetSocketAddress("127.0.0.1", 0));
            thread = new Thread(this::acceptOne, "nio-backend");
            thread.setDaemon(true);
            thread.start();
        }

        URI uri() throws IOException {
            return URI.create("ws://127.0.0.1:" + ((InetSocketAddress) server.getLocalAddress()).getPort());
        }

        private void acceptOne() {
            try {
                SocketChannel channel = server.accept();
                String head = readHead(channel);
                String key = head.lines().filter(line -> line.regionMatches(true, 0, "Sec-WebSocket-Key:", 0, 18))
                        .map(line -> line.substring(18).trim()).findFirst().orElseThrow();
                writeFully(channel, ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        + "Sec-WebSocket-Accept: " + RawFrames.accept(key) + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
                accepted.complete(channel);
            } catch (IOException | RuntimeException e) {
                accepted.completeExceptionally(e);
            }
        }

        @Override
        public void close() throws Exception {
            server.close();
            SocketChannel channel = accepted.getNow(null);
            if (channel != null) {
                channel.close();
            }
        }
    }

    // ---- socket helpers ----

    private static byte[] frame(int opcode, boolean masked) {
        return RawFrames.encode(opcode, new byte[FRAME_SIZE], masked);
    }

    /**
     * Writes {@code frame} again and again, non-blocking, until the socket stays unwritable for two seconds: the
     * receiving proxy stopped reading. Returns the bytes written.
     */
    private static long pushUntilStalled(SocketChannel channel, byte[] frame) throws IOException {
        channel.configureBlocking(false);
        long pushed = 0;
        try (Selector selector = Selector.open()) {
            SelectionKey key = channel.register(selector, SelectionKey.OP_WRITE);
            ByteBuffer buffer = ByteBuffer.wrap(frame);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (pushed < MAX_PUSHED && System.nanoTime() < deadline) {
                int written = channel.write(buffer);
                pushed += written;
                if (!buffer.hasRemaining()) {
                    buffer.rewind();
                } else if (written == 0 && selector.select(2_000) == 0) {
                    break;
                }
                selector.selectedKeys().clear();
            }
            key.cancel();
            selector.selectNow();
        }
        channel.configureBlocking(true);
        return pushed;
    }

    /**
     * Writes 1 MiB more, blocking: the bytes the peer had written before the close frame reached it are still in its
     * buffers, so these writes complete only if the proxy reads on, and fail if it reset the connection.
     */
    private static void assertStillWritable(SocketChannel channel, byte[] frame) {
        try {
            for (int i = 0; i < (1 << 20) / FRAME_SIZE; i++) {
                writeFully(channel, frame);
            }
        } catch (IOException e) {
            throw new AssertionError("the peer's writes after the close frame failed: the connection was reset", e);
        }
    }

    /** The close frame a peer read, and how its stream ended after it: {@code eof} or {@code reset}. */
    private record Ending(RawFrames.Frame close, String how) {
    }

    /**
     * Reads everything until the end of the stream or an error (10 s at most), and returns the first close frame
     * among it and how the stream ended.
     */
    private static Ending readUntilTheEnd(SocketChannel channel) throws IOException {
        channel.socket().setSoTimeout(10_000);
        ByteArrayOutputStream read = new ByteArrayOutputStream();
        InputStream in = channel.socket().getInputStream();
        byte[] chunk = new byte[65536];
        String how;
        while (true) {
            int n;
            try {
                n = in.read(chunk);
            } catch (java.net.SocketTimeoutException e) {
                how = "timeout";
                break;
            } catch (IOException e) {
                how = "reset";
                break;
            }
            if (n < 0) {
                how = "eof";
                break;
            }
            read.write(chunk, 0, n);
        }
        InputStream frames = new ByteArrayInputStream(read.toByteArray());
        RawFrames.Frame close = null;
        try {
            while (close == null) {
                RawFrames.Frame frame = RawFrames.read(frames);
                if (frame.opcode() == RawFrames.CLOSE) {
                    close = frame;
                }
            }
        } catch (EOFException e) {
            // No close frame among what was read.
        }
        assertThat(close).as("a close frame before the stream ended (%s)", how).isNotNull();
        return new Ending(close, how);
    }

    private static String readHead(SocketChannel channel) throws IOException {
        ByteArrayOutputStream head = new ByteArrayOutputStream();
        ByteBuffer one = ByteBuffer.allocate(1);
        while (!head.toString(StandardCharsets.US_ASCII).endsWith("\r\n\r\n")) {
            one.clear();
            if (channel.read(one) < 0) {
                throw new EOFException("connection closed in a response head: " + head);
            }
            head.write(one.get(0));
        }
        return head.toString(StandardCharsets.US_ASCII);
    }

    private static void writeFully(SocketChannel channel, byte[] bytes) throws IOException {
        ByteBuffer buffer = ByteBuffer.wrap(bytes);
        while (buffer.hasRemaining()) {
            channel.write(buffer);
        }
    }
}
