package dev.wsproxy;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Slowloris clients: sockets that send the start of a request head and then drip one more byte of a header value
 * now and then, never finishing it. One NIO selector watches them all, so that the test sees each close (a read of
 * -1 or a reset) as it happens, without a thread per socket.
 */
final class StalledSockets implements AutoCloseable {

    /** A request head cut in the middle of a header value, which the drip keeps extending. */
    static final String PARTIAL_HEAD = "GET /ws/stalled HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            + "Connection: Upgrade\r\nX-Drip: ";

    /** One stalled socket: when it was opened (before the connect) and, once seen, when it was closed. */
    static final class Stalled {
        final SocketChannel channel;
        final long openedNanos;
        volatile long closedNanos;
        volatile String unexpected;

        Stalled(SocketChannel channel, long openedNanos) {
            this.channel = channel;
            this.openedNanos = openedNanos;
        }

        boolean closed() {
            return closedNanos != 0;
        }

        /** How long the socket lived, from before its connect to its close as seen by the selector. */
        Duration lifetime() {
            return Duration.ofNanos(closedNanos - openedNanos);
        }
    }

    private final int port;
    private final Selector selector;
    private final List<Stalled> sockets = new ArrayList<>();
    private final ScheduledExecutorService dripper = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread thread = new Thread(r, "slowloris-drip");
        thread.setDaemon(true);
        return thread;
    });
    private final AtomicInteger drips = new AtomicInteger();

    StalledSockets(int port) throws IOException {
        this.port = port;
        this.selector = Selector.open();
    }

    /** Opens one more socket, sends {@link #PARTIAL_HEAD} and watches it. */
    Stalled open() throws IOException {
        long opened = System.nanoTime();
        SocketChannel channel = SocketChannel.open();
        channel.setOption(StandardSocketOptions.TCP_NODELAY, true);
        channel.connect(new InetSocketAddress("127.0.0.1", port));
        channel.write(StandardCharsets.ISO_8859_1.encode(PARTIAL_HEAD));
        channel.configureBlocking(false);
        Stalled stalled = new Stalled(channel, opened);
        synchronized (sockets) {
            sockets.add(stalled);
        }
        channel.register(selector, SelectionKey.OP_READ, stalled);
        return stalled;
    }

    /** Opens {@code count} sockets, one after the other. */
    List<Stalled> open(int count) throws IOException {
        List<Stalled> opened = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            opened.add(open());
        }
        return opened;
    }

    /**
     * Writes one more header byte to every open socket every {@code interval}, at most {@code times} times: the
     * connections are never idle, but their heads never end.
     */
    void drip(Duration interval, int times) {
        long millis = interval.toMillis();
        dripper.scheduleAtFixedRate(() -> {
            if (drips.incrementAndGet() > times) {
                dripper.shutdown();
                return;
            }
            List<Stalled> snapshot;
            synchronized (sockets) {
                snapshot = new ArrayList<>(sockets);
            }
            for (Stalled stalled : snapshot) {
                if (!stalled.closed()) {
                    try {
                        stalled.channel.write(ByteBuffer.wrap(new byte[] {'a'}));
                    } catch (IOException closedByThePeer) {
                        // Seen by the selector as well.
                    }
                }
            }
        }, millis, millis, TimeUnit.MILLISECONDS);
    }

    /** How many drip rounds have run. */
    int drips() {
        return drips.get();
    }

    /** Records the sockets closed by now, without waiting; returns how many are closed in all. */
    int pollClosed() throws IOException {
        selector.selectNow();
        return recordClosed();
    }

    /**
     * Waits until every socket is closed or {@code timeout} has passed (the upper bound, not a pause: each close wakes
     * the selector); returns how many are closed.
     */
    int awaitAllClosed(Duration timeout) throws IOException {
        long deadline = System.nanoTime() + timeout.toNanos();
        int closed = recordClosed();
        while (closed < size()) {
            long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
            if (left <= 0) {
                break;
            }
            selector.select(left);
            closed = recordClosed();
        }
        return closed;
    }

    private int recordClosed() throws IOException {
        for (SelectionKey key : selector.selectedKeys()) {
            Stalled stalled = (Stalled) key.attachment();
            ByteBuffer buffer = ByteBuffer.allocate(256);
            int read;
            try {
                read = stalled.channel.read(buffer);
            } catch (IOException reset) {
                read = -1;
            }
            if (read > 0) {
                // A proxy may not answer in the middle of a request head: a bare close is all there is.
                stalled.unexpected = StandardCharsets.ISO_8859_1.decode(buffer.flip()).toString();
                read = -1;
            }
            if (read < 0) {
                stalled.closedNanos = System.nanoTime();
                key.cancel();
            }
        }
        selector.selectedKeys().clear();
        int closed = 0;
        for (Stalled stalled : snapshot()) {
            if (stalled.closed()) {
                closed++;
            }
        }
        return closed;
    }

    List<Stalled> snapshot() {
        synchronized (sockets) {
            return new ArrayList<>(sockets);
        }
    }

    int size() {
        synchronized (sockets) {
            return sockets.size();
        }
    }

    @Override
    public void close() throws IOException {
        dripper.shutdownNow();
        for (Stalled stalled : snapshot()) {
            stalled.channel.close();
        }
        selector.close();
    }
}
