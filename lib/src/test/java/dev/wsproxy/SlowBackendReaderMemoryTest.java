package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.InputStream;
import java.net.SocketTimeoutException;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * A backend that stops reading must hold back the client through TCP (matrix row C2, the mirror of
 * {@link SlowReaderMemoryTest}): the proxy buffers at most a frame per direction. The proxy runs in a forked JVM with a
 * 64 MiB heap and 64 MiB of direct memory while a client pushes 256 MiB, in 64 KiB binary frames, at a backend that
 * upgrades and then reads nothing. A proxy that buffered what it cannot deliver would let the client send far more
 * than the bound below, or die of an OutOfMemoryError.
 *
 * <p>The client writes on a blocking socket from a thread of its own and counts the frames whose write returned. Once
 * the backend's receive buffer, the proxy's one frame in flight and the socket buffers on the way are full, its write
 * blocks and the count stops. The test polls the count every 500 ms and takes two equal readings in a row for that
 * stall. A pause alone would not prove it (a loaded machine can stop a thread for as long), so the test then requires
 * that the bytes written stay under 32 MiB (an eighth of the push), that the count has not moved after the proxy's
 * full GC either, and that it goes on to the full 256 MiB once the backend reads again.
 *
 * <p>Then the session ends as usual: once the backend has read everything, a close with {@code 1000} goes through
 * end to end. If the stalled backend is reset instead, the client gets {@code 1014} and its blocked write is released.
 */
class SlowBackendReaderMemoryTest {

    private static final int MESSAGES = 4096;
    private static final int MESSAGE_SIZE = 64 * 1024;
    private static final long TOTAL = (long) MESSAGES * MESSAGE_SIZE; // 256 MiB

    private final Thaw thaw = new Thaw();
    private RawBackend backend;
    private ForkedProxy proxy;
    private Writes writes;

    @AfterEach
    void stop() throws Exception {
        thaw.release();
        try {
            if (proxy != null) {
                proxy.close();
            }
        } finally {
            if (backend != null) {
                backend.close();
            }
        }
        if (writes != null) {
            writes.join(Duration.ofSeconds(10));
        }
    }

    @Test
    void holdsBackTheClientWhileTheBackendDoesNotReadAndDeliversEverythingOnceItDoes() throws Exception {
        CompletableFuture<long[]> received = new CompletableFuture<>();
        backend = RawBackend.upgradingThen((socket, out) -> {
            thaw.await();
            // Reads the client's 256 MiB as the proxy relays them (in pieces, perhaps), keeping none of it; then the
            // fixture answers the client's close frame.
            socket.setSoTimeout(30_000);
            InputStream in = socket.getInputStream();
            long bytes = 0;
            long messages = 0;
            while (bytes < TOTAL) {
                RawFrames.Frame frame = RawFrames.read(in);
                if (frame.opcode() != RawFrames.BINARY && frame.opcode() != RawFrames.CONTINUATION) {
                    received.completeExceptionally(new AssertionError("a data frame expected: " + frame));
                    return;
                }
                bytes += frame.payload().length;
                if (frame.fin()) {
                    messages++;
                }
            }
            received.complete(new long[] {bytes, messages});
        });
        proxy = ForkedProxy.start(backend.uri());
        try (RawWebSocket client = RawWebSocket.connect(proxy.ws("/slow-backend"))) {
            pushUntilHeldBack(client);

            thaw.release();
            assertThat(writes.done).as("the client's writes, once the backend reads")
                    .succeedsWithin(Duration.ofSeconds(60));
            assertThat(writes.written()).isEqualTo(MESSAGES);
            long[] bytesAndMessages = received.get(60, TimeUnit.SECONDS);
            assertThat(bytesAndMessages[0]).as("bytes at the backend").isEqualTo(TOTAL);
            assertThat(bytesAndMessages[1]).as("messages at the backend").isEqualTo(MESSAGES);
            assertThat(proxy.isAlive()).isTrue();

            client.sendClose(1000, "done");
            RawWebSocket.Frame close = client.readClose();
            assertThat(close.closeCode()).isEqualTo(1000);
            assertThat(close.text()).isEqualTo("done");
            assertThat(backend.nextEnd(10)).isEqualTo("close:1000");
        }
    }

    @Test
    void releasesTheHeldBackClientWith1014WhenTheStalledBackendIsReset() throws Exception {
        backend = RawBackend.upgradingThen((socket, out) -> {
            thaw.await();
            // Gone without a close frame, its receive buffer full: a reset.
            socket.setSoLinger(true, 0);
            socket.close();
        });
        proxy = ForkedProxy.start(backend.uri());
        try (RawWebSocket client = RawWebSocket.connect(proxy.ws("/slow-backend"))) {
            pushUntilHeldBack(client);

            thaw.release();
            RawWebSocket.Frame close = client.readClose();
            assertThat(close.closeCode()).isEqualTo(1014);
            assertThat(close.text()).isEqualTo("backend connection lost");
            // Jetty drops a connection right after a 1014: the client's blocked write fails instead of hanging.
            assertThatThrownBy(client::read).isInstanceOf(IOException.class)
                    .isNotInstanceOf(SocketTimeoutException.class);
            assertThat(writes.done).failsWithin(Duration.ofSeconds(10));
            assertThat(proxy.isAlive()).isTrue();
        }
    }

    /**
     * Writes 256 MiB from a thread of its own and waits until the writes stop completing; checks that the proxy holds
     * the client back with a bounded heap.
     */
    private void pushUntilHeldBack(RawWebSocket client) throws IOException {
        byte[] frame = RawFrames.encode(RawFrames.BINARY, new byte[MESSAGE_SIZE], true);
        writes = Writes.start("slow-backend-client-writes", MESSAGES, i -> client.sendRaw(frame));
        long stalledAt = writes.awaitHeldBack("the client's writes, held back", Duration.ofSeconds(60)) * MESSAGE_SIZE;
        assertThat(stalledAt).as("bytes the client could send to a backend that reads nothing")
                .isLessThan(32L * 1024 * 1024);
        long heap = proxy.assertHeapBounded("while stalled");
        // The figures docs/security.md could quote, beside the slow client reader's.
        System.out.printf("slow backend reader: client held back after %d KiB; proxy heap after GC %d KiB%n",
                stalledAt / 1024, heap / 1024);
        assertThat(writes.written() * MESSAGE_SIZE).as("bytes sent, after the proxy's full GC").isEqualTo(stalledAt);
    }
}
