package dev.wsproxy.internal;

import java.io.Closeable;
import java.io.IOException;
import java.net.SocketOption;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.CancelledKeyException;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.NetworkChannel;
import java.nio.channels.ReadPendingException;
import java.nio.channels.SelectableChannel;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;

import org.eclipse.jetty.io.ClientConnector;
import org.eclipse.jetty.io.Connection;
import org.eclipse.jetty.io.EndPoint;
import org.eclipse.jetty.io.ManagedSelector;
import org.eclipse.jetty.io.SelectorManager;
import org.eclipse.jetty.io.SocketChannelEndPoint;
import org.eclipse.jetty.io.Transport;
import org.eclipse.jetty.server.ConnectionFactory;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.BufferUtil;
import org.eclipse.jetty.util.IO;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.ProcessorUtils;
import org.eclipse.jetty.util.component.LifeCycle;
import org.eclipse.jetty.util.thread.Invocable;
import org.eclipse.jetty.util.thread.QueuedThreadPool;
import org.eclipse.jetty.util.thread.Scheduler;
import org.eclipse.jetty.util.thread.ThreadPool;
import org.eclipse.jetty.websocket.core.CoreSession;
import org.eclipse.jetty.websocket.core.WebSocketConnection;
import org.eclipse.jetty.websocket.core.WebSocketCoreSession;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Connectors whose socket end points let the selector thread run a WebSocket connection's reads itself.
 *
 * <h2>Why</h2>
 * Jetty's {@link WebSocketConnection} registers read interest with a {@link Invocable.InvocationType#BLOCKING}
 * callback, so the selector hands every read to another thread (a reserved thread takes over selecting while the
 * selector's thread runs the read, or a pool thread runs it): one or more thread wake-ups per relayed frame, which on
 * a busy core cost about as much CPU as the relaying. The relay never blocks on a read: it parses the frame, hands it
 * to the other leg's non-blocking write and demands the next frame when that write completes (see {@link Relay});
 * the listeners and selectors it calls must not block either (their contracts say so). So these end points mark the
 * read callback of a WebSocket connection {@code NON_BLOCKING}, and the selector runs the read, parsing and relaying
 * on its own thread, as an nginx worker does. Measured: 25–29 % less CPU per 64 B round trip, 0.14 context switches
 * instead of 0.84, 18 % less CPU per 16 KiB one ({@code docs/benchmarks.md}).
 *
 * <h2>What stays as it was</h2>
 * HTTP connections (handshakes, plain HTTP forwarding, the application's handlers) keep Jetty's blocking invocation
 * and its hand-off to the pool: the end point checks its connection each time read interest is registered. A write
 * that does not complete at once still completes on a pool thread (Jetty's write flusher decides).
 *
 * <h2>Resumed reads</h2>
 * A leg that has no demand stops reading; when the other leg's write completes, the relay demands again
 * ({@link #demand}) and Jetty's connection hands its read to its executor: one thread waking another, for work the
 * waking thread can do itself. Reads resumed by the relay run on the thread that resumes them instead: on the backend
 * leg always (its connection is the relay's, {@link #resumingExecutor}), on the client leg when the server's pool is
 * {@link #threadPool()} (the standalone proxy's, or a mounted server's created with it). Only the connection being
 * demanded is run so; a read runs at most once per connection at a time (Jetty's connection refuses to re-enter), so
 * nesting stays shallow: a read on one leg can resume the other, never itself. One consequence: the backend leg's
 * first read runs when the client leg opens, inside its {@code onOpen}, so frames a backend sends right after the
 * upgrade are relayed before the client leg reads its first frame (before, the two reads ran side by side on two
 * threads). A demand after a failed write (the other leg is closing) still goes to the pool: that failure can be
 * seen on the scheduler's thread or an application's, which should not run a read.
 *
 * <h2>Short reads</h2>
 * Jetty's WebSocket connection fills again after each frame it delivers, so every relayed frame cost a second {@code
 * read} that failed with {@code EAGAIN}: a third of the relay's system calls (a read, a failed read and a {@code
 * writev} per frame). A read that returns fewer bytes than its buffer had room for has emptied the socket's receive
 * queue; when those bytes also ended a message (the connection's parser says so, {@link #parseBoundaries}), the peer
 * has sent all it had, and the fill after it returns 0 without asking the kernel. The connection then registers a
 * read as after any empty fill, and the selector, level-triggered, signals at once bytes that came in between. In the
 * middle of a message (a large one streams in) the fill reads: its bytes are likely there already, and a read is
 * cheaper than a turn through the selector; so does a read the relay resumes after holding it back (the other
 * leg's write was pending: time has passed). nginx trusts a short read the same way, without the exceptions. Plain
 * HTTP connections, TLS sockets and WebSocket connections whose parser could not be installed ({@link Masking})
 * always read.
 *
 * <h2>Selector tasks</h2>
 * Jetty's selectors also hand three tasks of their own to the pool: creating the end point and connection of an
 * accepted or connected socket, and cleaning up after a socket closed (the connection's {@code onClose}, the
 * listeners). These connectors run the first two on the selector thread, and queue the third to the socket's own
 * selector, as an update it runs between two selects, outside the locks of whoever closed the socket (Jetty wakes
 * that selector for the close anyway); while the connector stops, the pool takes it again. So the selector runs the
 * connection factories' {@code newConnection} and {@code onOpen} and the connection listeners: those of the proxy
 * (HTTP/1.1, TLS, the backend handshake, the handshake guard) do not block; a server the proxy is mounted in that
 * adds factories or listeners to {@code WebSocketProxy.serverConnector} must keep them so too. A storm of handshakes
 * costs a third to a half of the context switches it did.
 *
 * <h2>Accepting</h2>
 * The server connector has no acceptor thread: its selector accepts (a non-blocking {@code accept}, registered like
 * any other I/O), as an nginx worker does. With Jetty's default acceptor thread, every new connection was one
 * thread waking another (the acceptor blocks in {@code accept}, then wakes the selector to register the channel).
 *
 * <h2>One selector per session</h2>
 * A backend connection opened for a client whose socket one of these server connectors serves is registered with
 * that socket's own selector, not with the backend client's: the selector that read the upgrade request also
 * connects, writes the backend handshake, reads the {@code 101}, upgrades the client, and relays both directions, as
 * an nginx worker serves both connections of a request. Before, every session went back and forth between two
 * selector threads (the connect, the backend's {@code 101}, each echo), a wake-up each way. The server connector's
 * selector manager then acts as the client connector's selector manager for those sockets: the end point gets the
 * client's idle timeout, the connection comes from the connect context's factory, opening it completes the context's
 * promise and a failed connect fails it, and the connect times out after the client's connect timeout. Such end
 * points are not the server connector's: they are not among its connected end points, and its accept listeners do
 * not hear of them. Everything else keeps the backend client's selectors: the health checks, a connect that completes
 * at once (Jetty registers those as accepted sockets), a connector that is stopping, and a proxy mounted in a server
 * whose connector is not one of these. A backend connection lives as long as the server connector that serves it:
 * stopping the connector closes it with the client's socket.
 *
 * <h2>Watching a waiting client</h2>
 * Jetty's HTTP connection does not read while a request is handled, so a client that leaves while its upgrade
 * request waits for the backend would be noticed only when its {@code 101} is written, and its backend connection
 * would live until the backend answered or the connect timeout. While a backend handshake is pending, the proxy
 * registers a read of its own on the client's socket ({@link #watchClient}): at the end of the stream (a close, a
 * reset) or when the socket is closed, the handshake ends at once and the backend connection with it. Bytes a client
 * sends before its {@code 101} (a WebSocket client must not, a TLS alert may come) are read into a small buffer,
 * {@value #EARLY_BYTES} bytes at most, that the connection's next fills return first, in order; with a full buffer
 * the watch stops. When the handshake ends the watch is disarmed before anything is written to the client, and stays
 * registered: the read the upgraded connection registers next takes its place. So the socket's read interest does
 * not drop between the request and the upgraded connection's reads (unless the client's first frame arrives before
 * that read is registered: the level-triggered selector signals it again), which also spares the two
 * {@code epoll_ctl} calls per handshake the JDK makes when a socket's interest drops to none and comes back. A read
 * registered before the watch (none is, in Jetty's HTTP/1.1) turns it off.
 *
 * <h2>Threads</h2>
 * The selectors are now where relaying happens: both directions of a session on the server connector's selector
 * that accepted its client (see above); on the backend client's selectors only when the server connector is not one
 * of these. So these server connectors get as many selectors as the two connectors had together (Jetty's default of
 * half the processors, at most one per 16 pool threads, plus the backend client's half), at most one per processor;
 * the backend client keeps half the processors, for proxies mounted behind another connector.
 *
 * <h2>Lingering close</h2>
 * Jetty drops a WebSocket connection right after it writes a close frame with an error code (anything but 1000 and
 * 3000-4999). If the peer is still sending, the kernel resets the connection (bytes unread, or arriving after the
 * close), and a peer blocked writing sees its write fail before it reads the close frame: it reports 1006, not the
 * code it was sent. A relay leg's socket therefore lingers when it closes while its peer has sent no close frame and
 * has not ended its stream (the leg's parser says so, {@link ParseBoundaries#lingers}) and nothing waits to be
 * written: its output is shut down after the close frame, its selector reads and discards what the peer still sends
 * until the end of the stream, an error, {@value #LINGER_MILLIS} ms or {@link #LINGER_BYTES} bytes, and then closes
 * it ({@code Linger}, which takes the socket's selection key from the end point). Jetty's end point and connection
 * are closed as before; the session is over. A socket the relay drops ({@link #abort}) closes at once.
 *
 * <h2>After a burst</h2>
 * The server connectors' selectors are {@link CompactingSelector}s where Jetty's selector field can be reached: once a
 * burst of ready sockets is over, they move their sockets to a fresh JDK selector, whose selected-key table is small
 * again (a JDK selector's never shrinks, and Jetty walks all of it three times per select).
 */
public final class WebSocketEndPoints {

    private static final Logger LOG = LoggerFactory.getLogger(WebSocketEndPoints.class);

    private WebSocketEndPoints() {
    }

    /**
     * A server connector on {@code server} whose WebSocket connections read on the selector thread, and whose
     * selectors accept connections (no acceptor thread). Its selectors relay both legs of their sessions (see "One
     * selector per session"), the work that the server connector's selectors (Jetty's default: half the processors,
     * at most one per 16 pool threads) and the backend client's (half the processors) shared before; so it has as
     * many as those two together, at most one per processor, as nginx runs one worker per core.
     */
    public static ServerConnector serverConnector(Server server, ConnectionFactory... factories) {
        int threads = server.getThreadPool() instanceof ThreadPool.SizedThreadPool pool ? pool.getMaxThreads()
                : Integer.MAX_VALUE;
        int cpus = ProcessorUtils.availableProcessors();
        int selectors = Math.max(1, Math.min(cpus, Math.min(cpus / 2, threads / 16) + cpus / 2));
        return new Connector(server, selectors, factories);
    }

    /**
     * Closes the listening socket of a started {@link #serverConnector}, so that it accepts no more connections while
     * the ones it accepted go on; its stop closes it again, harmlessly. Jetty's own {@code close()} leaves the socket
     * of a connector without acceptor threads to its selector manager's stop, listening until then.
     *
     * <p>The socket is closed on the selector that accepts for it, between two of its selects: no accept runs on it as
     * it closes (each would log a WARN), and the JDK, which releases a socket registered with a selector only at that
     * selector's next select, releases it at once, as the update wakes that selector. Closed from another thread, it
     * went on listening until its selector woke for some other reason: on an idle one, the next connection the kernel
     * queued there was reset, not refused or taken by a successor on the same address.
     *
     * @return completed once the socket is closed (at once when it was closed here), for a stop that must not begin
     *         its drain while the socket still accepts: a connection it took then got the stopping proxy's 503
     */
    public static CompletableFuture<Void> closeListener(org.eclipse.jetty.server.Connector connector) {
        if (!(connector instanceof ServerConnector server
                && server.getTransport() instanceof ServerSocketChannel channel)) {
            return CompletableFuture.completedFuture(null);
        }
        SelectorManager selectors = server.getSelectorManager();
        List<ManagedSelector> all = selectors == null ? List.of()
                : List.copyOf(selectors.getBeans(ManagedSelector.class));
        if (all.isEmpty() || !channel.isRegistered()) {
            IO.close(channel);
            return CompletableFuture.completedFuture(null);
        }
        CompletableFuture<Void> closed = new CompletableFuture<>();
        AtomicInteger left = new AtomicInteger(all.size());
        for (ManagedSelector selector : all) {
            selector.submit(jdkSelector -> {
                try {
                    if (channel.keyFor(jdkSelector) != null) {
                        IO.close(channel);
                    }
                } finally {
                    if (left.decrementAndGet() == 0) {
                        closed.complete(null);
                    }
                }
            });
        }
        return closed;
    }

    /** {@link #serverConnector(Server, ConnectionFactory...)} with {@code selectors} selectors (for tests). */
    public static ServerConnector serverConnector(Server server, int selectors, ConnectionFactory... factories) {
        return new Connector(server, selectors, factories);
    }

    /**
     * The key, in the context of a backend connect, of the client leg's end point whose selector the backend socket
     * is to share (see "One selector per session" above).
     */
    static final String HOME_CONTEXT_KEY = WebSocketEndPoints.class.getName() + ".home";

    /**
     * The end point of {@code request}'s socket, when one of these server connectors serves it and may take its
     * backend connection on the same selector; {@code null} otherwise. Only for {@link #HOME_CONTEXT_KEY}.
     */
    static @Nullable Object home(Request request) {
        Connection connection = request.getConnectionMetaData().getConnection();
        EndPoint endPoint = connection == null ? null : connection.getEndPoint();
        while (endPoint instanceof EndPoint.Wrapper wrapper) {
            // TLS: the socket's end point under the decrypted one.
            EndPoint wrapped = wrapper.unwrap();
            if (wrapped == endPoint) {
                break;
            }
            endPoint = wrapped;
        }
        return endPoint instanceof SelectorReadEndPoint socket && socket.connector != null ? socket : null;
    }

    /** Wakes the selector of {@code home} (a {@link #home} end point), for a socket closed while registered there. */
    static void wakeHome(@Nullable Object home) {
        if (home instanceof SelectorReadEndPoint socket) {
            wake(socket.selector);
        }
    }

    /** Wakes {@code selector} with an update that does nothing: it selects again, and the JDK ends closed sockets. */
    static void wake(ManagedSelector selector) {
        selector.submit(NOTHING);
    }

    private static final ManagedSelector.SelectorUpdate NOTHING = selector -> {
    };

    /**
     * Watches the client socket {@code home} (a {@link #home} end point) while its upgrade request waits for the
     * backend: runs {@code onGone} if the client closes or resets its connection, until
     * {@link #unwatchClient} or the connection reads again (see "Watching a waiting client" above). Returns
     * {@code false} when it cannot watch: not one of these sockets, a read registered already, or bytes the client
     * sent early still unread.
     */
    static boolean watchClient(@Nullable Object home, Runnable onGone) {
        return home instanceof SelectorReadEndPoint socket && socket.watch(onGone);
    }

    /** Stops watching {@code home} for {@link #watchClient}'s {@code onGone}; waits for a probe that is reading. */
    static void unwatchClient(@Nullable Object home) {
        if (home instanceof SelectorReadEndPoint socket) {
            Watch watch = socket.watch;
            if (watch != null) {
                watch.disarm();
            }
        }
    }

    /** A backend connect made on a server connector's selector: where, and its timeout. */
    private record BackendConnect(ManagedSelector selector, long timeout) {
    }

    /** The backend connect this thread is submitting to a server connector's selector manager. */
    private static final ThreadLocal<@Nullable BackendConnect> BACKEND_CONNECT = new ThreadLocal<>();

    /**
     * A thread pool for a server whose connector is {@link #serverConnector}: it runs a client leg's read resumed by
     * the relay on the resuming thread (see "Resumed reads" above); every other task goes to the pool as usual.
     */
    public static QueuedThreadPool threadPool() {
        return new Pool();
    }

    /**
     * The executor of a backend leg's connection: the read {@link #demand} resumes runs on the demanding thread, every
     * other task on {@code pool}.
     */
    static Executor resumingExecutor(Executor pool) {
        return task -> {
            if (!runResumed(task)) {
                pool.execute(task);
            }
        };
    }

    /**
     * Demands the next frame of a relay leg. When that resumes the leg's read (Jetty's connection then hands itself
     * to its executor), {@link #threadPool()} and {@link #resumingExecutor} run that read on this thread. Only the
     * connection demanded is run so: any other task, such as another connection a listener demands meanwhile, goes
     * to the pool as usual.
     */
    static void demand(CoreSession session) {
        WebSocketConnection connection = session instanceof WebSocketCoreSession core ? core.getConnection() : null;
        if (connection == null) {
            session.demand();
            return;
        }
        WebSocketConnection outer = RESUMING.get();
        RESUMING.set(connection);
        try {
            session.demand();
        } finally {
            RESUMING.set(outer);
        }
    }

    /** Runs {@code task} here and returns {@code true} if it is the read of the connection this thread demands. */
    private static boolean runResumed(Runnable task) {
        if (task != RESUMING.get()) {
            return false;
        }
        if (((WebSocketConnection) task).getEndPoint() instanceof SelectorReadEndPoint socket) {
            // The read stopped for want of demand, a while ago maybe: its last short read is not to be trusted.
            socket.drained = false;
        }
        try {
            task.run();
        } catch (Throwable x) {
            // What the pool would have done with a task that throws (Jetty's connection catches its own failures).
            LOG.warn("Resumed read of {} failed", task, x);
        }
        return true;
    }

    /** The connection whose read this thread resumes, within {@link #demand}. */
    private static final ThreadLocal<@Nullable WebSocketConnection> RESUMING = new ThreadLocal<>();

    /** A client connector, for the backend {@code HttpClient}, whose WebSocket connections read on the selector. */
    static ClientConnector clientConnector() {
        Client connector = new Client();
        connector.setSelectors(Math.max(1, ProcessorUtils.availableProcessors() / 2));
        return connector;
    }

    private static final class Connector extends ServerConnector {

        Connector(Server server, int selectors, ConnectionFactory... factories) {
            super(server, 0, selectors, factories);
        }

        /**
         * Also closes the accept channel of a connector that was opened but never started. Without acceptor threads,
         * Jetty leaves that channel to the selector manager, which closes it when it stops; but {@code Server.start()}
         * opens every connector before it starts anything, and when a later step fails (a handler that does not
         * start) it only calls this, with no selector manager running: the port stayed bound, listening, for good.
         */
        @Override
        public void close() {
            super.close();
            if (isStopped() && getTransport() instanceof ServerSocketChannel channel) {
                IO.close(channel);
            }
        }

        @Override
        protected SocketChannelEndPoint newEndPoint(SocketChannel channel, ManagedSelector selector, SelectionKey key) {
            SocketChannelEndPoint endPoint = new SelectorReadEndPoint(channel, selector, key, getScheduler(), this);
            endPoint.setIdleTimeout(getIdleTimeout());
            return endPoint;
        }

        @Override
        protected SelectorManager newSelectorManager(Executor executor, Scheduler scheduler, int selectors) {
            return new Shared(executor, scheduler, selectors);
        }

        /**
         * The server connector's selector manager, which also serves the backend sockets of its clients: for a socket
         * whose attachment is the context of a {@link Client}'s connect, it does what that client's selector manager
         * does (see "One selector per session" above).
         */
        final class Shared extends ServerConnectorManager {

            /** This manager's selectors while it runs, to find the key of a channel that connected. */
            private final @Nullable ManagedSelector[] selectors;

            Shared(Executor executor, Scheduler scheduler, int selectors) {
                super(executor, scheduler, selectors);
                this.selectors = new ManagedSelector[getSelectorCount()];
            }

            /**
             * Connects {@code channel} on {@code selector}, one of this manager's, with {@code timeout}; Jetty's
             * connect picks the selector and reads the timeout through {@link #chooseSelector} and
             * {@link #getConnectTimeout}, on this thread.
             */
            void connectBackend(SelectableChannel channel, Object context, ManagedSelector selector, long timeout) {
                BACKEND_CONNECT.set(new BackendConnect(selector, timeout));
                try {
                    connect(channel, context);
                } finally {
                    // Not remove(): the thread keeps its entry, and a storm of handshakes skips clearing it each time.
                    BACKEND_CONNECT.set(null);
                }
            }

            @Override
            protected ManagedSelector chooseSelector() {
                BackendConnect backend = BACKEND_CONNECT.get();
                return backend != null ? backend.selector() : super.chooseSelector();
            }

            @Override
            public long getConnectTimeout() {
                BackendConnect backend = BACKEND_CONNECT.get();
                return backend != null ? backend.timeout() : super.getConnectTimeout();
            }

            @Override
            protected ManagedSelector newSelector(int id) {
                ManagedSelector selector = CompactingSelector.available() ? new CompactingSelector(this, id)
                        : super.newSelector(id);
                selectors[id] = selector;
                return selector;
            }

            @Override
            protected void execute(Runnable task) {
                if (!SelectorTasks.runOnSelector(task, this, pooled -> super.execute(pooled))) {
                    super.execute(task);
                }
            }

            @Override
            protected SocketChannelEndPoint newEndPoint(SelectableChannel channel, ManagedSelector selector,
                    SelectionKey key) throws IOException {
                Client.Manager client = Client.managerOf(key.attachment());
                return client != null ? client.backendEndPoint((SocketChannel) channel, selector, key)
                        : super.newEndPoint(channel, selector, key);
            }

            @Override
            public Connection newConnection(SelectableChannel channel, EndPoint endPoint, Object attachment)
                    throws IOException {
                Client.Manager client = Client.managerOf(attachment);
                return client != null ? client.newConnection(channel, endPoint, attachment)
                        : super.newConnection(channel, endPoint, attachment);
            }

            @Override
            public void connectionOpened(Connection connection, Object context) {
                Client.Manager client = Client.managerOf(context);
                if (client != null) {
                    client.connectionOpened(connection, context);
                } else {
                    super.connectionOpened(connection, context);
                }
            }

            @Override
            protected void connectionSucceeded(SelectableChannel channel) {
                // Only backend sockets connect here; Jetty has attached the connect's context to the key by now.
                Client.Manager client = Client.managerOf(attachmentOf(channel));
                if (client != null) {
                    client.connectionSucceeded(channel);
                } else {
                    super.connectionSucceeded(channel);
                }
            }

            @Override
            protected void connectionFailed(SelectableChannel channel, Throwable failure, Object attachment) {
                Client.Manager client = Client.managerOf(attachment);
                if (client != null) {
                    client.failed(channel, failure, attachment);
                } else {
                    super.connectionFailed(channel, failure, attachment);
                }
            }

            @Override
            protected void endPointOpened(EndPoint endPoint) {
                // A backend socket is not one of the server connector's (graceful shutdown, statistics).
                if (!isBackend(endPoint)) {
                    super.endPointOpened(endPoint);
                }
            }

            @Override
            protected void endPointClosed(EndPoint endPoint) {
                // Nor do the server connector's accept listeners hear of it.
                if (!isBackend(endPoint)) {
                    super.endPointClosed(endPoint);
                }
            }

            private boolean isBackend(EndPoint endPoint) {
                return endPoint instanceof SelectorReadEndPoint socket && socket.connector == null;
            }

            private @Nullable Object attachmentOf(SelectableChannel channel) {
                for (ManagedSelector managed : selectors) {
                    Selector selector = managed == null ? null : managed.getSelector();
                    SelectionKey key = selector == null ? null : channel.keyFor(selector);
                    if (key != null) {
                        return key.attachment();
                    }
                }
                return null;
            }
        }
    }

    static final class Client extends ClientConnector {

        /**
         * What Jetty's connector sets on each socket it opens, less {@code SO_REUSEADDR} and {@code SO_REUSEPORT}
         * where it binds none: options of a bound address, two system calls per backend connection on a socket that
         * connects from a port the kernel picks (a storm cycle made 5 {@code setsockopt} calls, nginx 2). Like nginx's
         * upstream sockets, such a socket then keeps its port from a listener that binds it with
         * {@code SO_REUSEADDR} while the connection lives or waits in {@code TIME_WAIT}.
         */
        @Override
        protected void configure(SelectableChannel selectable) throws IOException {
            if (getBindAddress() != null || !(selectable instanceof NetworkChannel channel)) {
                super.configure(selectable);
                return;
            }
            setOption(channel, StandardSocketOptions.TCP_NODELAY, isTCPNoDelay());
            if (getReceiveBufferSize() >= 0) {
                setOption(channel, StandardSocketOptions.SO_RCVBUF, getReceiveBufferSize());
            }
            if (getSendBufferSize() >= 0) {
                setOption(channel, StandardSocketOptions.SO_SNDBUF, getSendBufferSize());
            }
        }

        /** Sets an option; a socket that refuses one is used without it, as Jetty's connector does. */
        private static <T> void setOption(NetworkChannel channel, SocketOption<T> option, T value) {
            try {
                channel.setOption(option, value);
            } catch (Throwable x) {
                LOG.trace("Could not set {} to {} on {}", option, value, channel, x);
            }
        }

        @Override
        protected EndPoint newEndPoint(SelectableChannel selectable, ManagedSelector selector, SelectionKey key) {
            @SuppressWarnings("unchecked")
            Map<String, Object> context = (Map<String, Object>) key.attachment();
            if (context != null && context.get(Transport.CONTEXT_KEY) == Transport.TCP_IP
                    && selectable instanceof SocketChannel channel) {
                // What Transport.TCP_IP.newEndPoint does, with the subclass.
                return new SelectorReadEndPoint(channel, selector, key, getScheduler(), null);
            }
            return super.newEndPoint(selectable, selector, key);
        }

        @Override
        protected SelectorManager newSelectorManager() {
            return new Manager();
        }

        /** The selector manager of the client whose connect {@code attachment} is the context of, if it is one. */
        static @Nullable Manager managerOf(@Nullable Object attachment) {
            if (attachment instanceof Map<?, ?> context && context.get(ClientConnector.CONTEXT_KEY) instanceof Client c
                    && c.getSelectorManager() instanceof Manager manager) {
                return manager;
            }
            return null;
        }

        /**
         * The client's selector manager: it hands a backend connect whose context names the client leg's end point
         * to that end point's server connector (see "One selector per session" above), which calls back here for
         * what a client selector manager decides.
         */
        final class Manager extends ClientSelectorManager {

            Manager() {
                super(Client.this.getExecutor(), Client.this.getScheduler(), Client.this.getSelectors());
            }

            @Override
            public void connect(SelectableChannel channel, Object attachment) {
                if (attachment instanceof Map<?, ?> context
                        && context.get(Transport.CONTEXT_KEY) == Transport.TCP_IP
                        && context.get(HOME_CONTEXT_KEY) instanceof SelectorReadEndPoint home
                        && home.connectBackend(channel, attachment, getConnectTimeout())) {
                    return;
                }
                super.connect(channel, attachment);
            }

            @Override
            protected void execute(Runnable task) {
                if (!SelectorTasks.runOnSelector(task, this, pooled -> super.execute(pooled))) {
                    super.execute(task);
                }
            }

            /** The end point of a backend socket on a server connector's {@code selector}, as this manager's. */
            SocketChannelEndPoint backendEndPoint(SocketChannel channel, ManagedSelector selector, SelectionKey key) {
                SocketChannelEndPoint endPoint = new SelectorReadEndPoint(channel, selector, key, getScheduler(),
                        null);
                endPoint.setIdleTimeout(getIdleTimeout().toMillis());
                return endPoint;
            }

            /** A backend connect on a server connector's selector failed or timed out. */
            void failed(SelectableChannel channel, Throwable failure, Object attachment) {
                connectionFailed(channel, failure, attachment);
            }
        }
    }

    /** The selector tasks these connectors keep on their selectors (see "Selector tasks" above). */
    private static final class SelectorTasks {

        /** Jetty's tasks for an accepted socket and for a connected one: they create its end point and connection. */
        private static final @Nullable Class<?> ACCEPT = jettyClass("org.eclipse.jetty.io.ManagedSelector$Accept");
        private static final @Nullable Class<?> CREATE =
                jettyClass("org.eclipse.jetty.io.ManagedSelector$CreateEndPoint");
        /** Jetty's task after a socket closed: closes its connection and tells the listeners. */
        private static final @Nullable Class<?> DESTROY =
                jettyClass("org.eclipse.jetty.io.ManagedSelector$DestroyEndPoint");

        private SelectorTasks() {
        }

        /**
         * Runs {@code task} on a selector, or hands it to {@code pool}, and returns {@code true}; returns
         * {@code false} for the caller to hand it to the pool.
         */
        static boolean runOnSelector(Runnable task, SelectorManager manager, Consumer<Runnable> pool) {
            Class<?> type = task.getClass();
            if (type == ACCEPT || type == CREATE) {
                // Called by the selector thread, while it processes its keys or updates.
                task.run();
                return true;
            }
            ManagedSelector own = CLOSING.get();
            if (type != DESTROY || own == null || !manager.isRunning()) {
                return false;
            }
            // Called by whoever closed the socket: queued to the socket's own selector (which Jetty wakes up for the
            // close anyway), so that it runs outside that caller's locks.
            Once once = new Once(task);
            own.submit(selector -> once.run());
            if (!manager.isRunning()) {
                // The manager began to stop meanwhile, and may stop the selector before it takes the update. Had it
                // not begun when checked here, its selectors' stop would come after the update in their queue.
                pool.accept(once);
            }
            return true;
        }

        private static @Nullable Class<?> jettyClass(String name) {
            try {
                return Class.forName(name, false, ManagedSelector.class.getClassLoader());
            } catch (ClassNotFoundException e) {
                // Another Jetty: its tasks go to the pool, as Jetty wants.
                return null;
            }
        }
    }

    /** The selector of the end point this thread closes, within {@link SelectorReadEndPoint#onClose}. */
    private static final ThreadLocal<@Nullable ManagedSelector> CLOSING = new ThreadLocal<>();

    /** A task that runs at most once, however many times it is asked to. */
    private static final class Once implements Runnable {

        private final AtomicBoolean done = new AtomicBoolean();
        private final Runnable task;

        Once(Runnable task) {
            this.task = task;
        }

        @Override
        public void run() {
            if (done.compareAndSet(false, true)) {
                task.run();
            }
        }
    }

    /**
     * Whether this thread is one of {@code pool}'s, when it is a {@link #threadPool()}: a server's stop called on it
     * waits for it (on one of its selectors, for ever), so {@code WebSocketProxy.stop} refuses to stop its standalone
     * server from there.
     */
    public static boolean runsOn(ThreadPool pool) {
        return pool instanceof Pool own && Pool.OWNER.get() == own;
    }

    /** The pool of {@link #threadPool()}. */
    private static final class Pool extends QueuedThreadPool {

        /** The pool whose thread this is ({@link #runsOn}); set once, as the thread starts. */
        private static final ThreadLocal<@Nullable Pool> OWNER = new ThreadLocal<>();

        @Override
        public void execute(Runnable job) {
            if (!runResumed(job)) {
                super.execute(job);
            }
        }

        @Override
        public Thread newThread(Runnable runnable) {
            return super.newThread(() -> {
                OWNER.set(this);
                runnable.run();
            });
        }
    }

    private static final class SelectorReadEndPoint extends SocketChannelEndPoint implements ParseBoundaries {

        /** The last callback adapted, and its adaptation: a WebSocket connection passes the same callback each time. */
        private volatile @Nullable NonBlocking adapted;

        /** The selector of this end point. */
        private final ManagedSelector selector;
        /** The server connector that accepted this socket; {@code null} for a backend socket. */
        private final @Nullable Connector connector;

        /** This end point's selection key, as Jetty's superclass holds it (private there). */
        private volatile SelectionKey key;

        private final Scheduler scheduler;
        /** Whether the socket lingers when it closes: {@link #LINGER_NONE}, {@link #LINGER_ARMED} or {@link #LINGER_OFF}. */
        private volatile int linger = LINGER_NONE;
        /** Whether the socket's lingering close began: the end point then leaves the selection key alone. */
        private volatile boolean lingering;

        SelectorReadEndPoint(SocketChannel channel, ManagedSelector selector, SelectionKey key, Scheduler scheduler,
                @Nullable Connector connector) {
            super(channel, selector, key, scheduler);
            this.selector = selector;
            this.connector = connector;
            this.key = key;
            this.scheduler = scheduler;
        }

        @Override
        public void replaceKey(SelectionKey newKey) {
            key = newKey;
            super.replaceKey(newKey);
        }

        /**
         * Closes the end point when its key was cancelled (its socket closed since an interest update was queued),
         * as Jetty does, but without asking the key: the JDK answers with a {@code CancelledKeyException} and its
         * stack trace, which Jetty catches to close the end point. In a handshake storm, where each socket closes with
         * an update pending, building those exceptions was 1.6 % of the proxy's CPU.
         */
        @Override
        public void updateKey() {
            if (lingering) {
                // The key is the lingering close's now.
                return;
            }
            if (!key.isValid()) {
                close();
                return;
            }
            super.updateKey();
        }

        /**
         * Connects a backend {@code channel} on this client socket's selector, and returns {@code true}; returns
         * {@code false} when it cannot (not a server connector's socket, or its connector stops), for the backend
         * client to connect on its own selectors.
         */
        boolean connectBackend(SelectableChannel channel, Object context, long timeout) {
            Connector home = connector;
            if (home == null || !(home.getSelectorManager() instanceof Connector.Shared shared)
                    || !shared.isRunning() || !selector.isRunning()) {
                return false;
            }
            shared.connectBackend(channel, context, selector, timeout);
            return true;
        }

        /** Watches this client socket while its handshake waits for the backend; {@code null} until it first does. */
        private volatile @Nullable Watch watch;
        /** Bytes the watch read while the handshake waited, for this end point's next fills; {@code null} if none. */
        private volatile @Nullable ByteBuffer early;

        boolean watch(Runnable onGone) {
            if (connector == null) {
                return false;
            }
            if (isInputShutdown() || !isOpen()) {
                // Gone before this attempt began (a probe of the attempt before saw the end of the stream).
                onGone.run();
                return true;
            }
            ByteBuffer bytes = early;
            if (bytes != null && BufferUtil.space(bytes) == 0) {
                return false;
            }
            Watch current = watch;
            if (current == null) {
                current = new Watch(this);
                watch = current;
            }
            return current.arm(onGone);
        }

        /** Registers {@code watch} for the next read, past the hand-over of {@link #tryFillInterested}. */
        boolean register(Watch watch) {
            if (!super.tryFillInterested(watch)) {
                return false;
            }
            if (!isOpen()) {
                // Closed meanwhile: Jetty failed the reads registered at the close, not this one.
                getFillInterest().onClose();
            }
            return true;
        }

        /**
         * Reads what the client sent while its handshake waits into {@link #early}: returns {@code -1} when the
         * client closed or reset its connection, {@code 1} when {@link #EARLY_BYTES} are held (the watch then stops),
         * {@code 0} otherwise.
         */
        int probe() {
            ByteBuffer bytes = early;
            if (bytes == null) {
                bytes = BufferUtil.allocate(EARLY_BYTES);
            }
            int filled;
            try {
                do {
                    filled = super.fill(bytes);
                } while (filled > 0);
            } catch (IOException e) {
                filled = -1;
            }
            if (bytes.hasRemaining()) {
                early = bytes;
            }
            return filled < 0 ? -1 : BufferUtil.space(bytes) == 0 ? 1 : 0;
        }

        @Override
        public int fill(ByteBuffer buffer) throws IOException {
            ByteBuffer bytes = early;
            if (bytes != null) {
                // The watch may have stopped with its buffer full: more bytes may wait in the socket.
                drained = false;
                // Never past them: the socket's end of stream comes after the bytes read before it.
                int appended = BufferUtil.append(buffer, bytes);
                if (!bytes.hasRemaining()) {
                    early = null;
                }
                if (appended > 0) {
                    notIdle();
                }
                return appended;
            }
            if (drained) {
                drained = false;
                if (betweenMessages && !isInputShutdown()) {
                    // The last read found fewer bytes than it had room for, and they ended a message: the peer had
                    // sent all it had. Trust it instead of asking the kernel again (an EAGAIN); the caller registers
                    // a read, and the level-triggered selector signals it at once if bytes came meanwhile.
                    return 0;
                }
            }
            int filled = super.fill(buffer);
            if (filled < 0) {
                // The peer will send nothing more (or reset the connection): nothing to linger for.
                linger = LINGER_OFF;
            }
            // After the read the buffer's limit is where it stopped: short of the capacity, the read was short.
            drained = filled > 0 && BufferUtil.space(buffer) > 0;
            return filled;
        }

        @Override
        public void parsed(boolean betweenMessages) {
            this.betweenMessages = betweenMessages;
        }

        @Override
        public void lingers(boolean lingers) {
            if (!lingers) {
                linger = LINGER_OFF;
            } else if (linger == LINGER_NONE) {
                linger = LINGER_ARMED;
            }
        }

        /**
         * Closes the socket, or begins its lingering close (see "Lingering close" above) when it is a relay leg's whose
         * peer sent no close frame and did not end its stream, and everything written has gone out (the close frame
         * among it); Jetty's end point, connection and callbacks are closed either way.
         */
        @Override
        public void doClose() {
            if (linger == LINGER_ARMED && !getWriteFlusher().isPending() && Linger.begin(this)) {
                return;
            }
            super.doClose();
        }

        /**
         * Whether the last fill read fewer bytes than the buffer had room for (so the socket's receive queue was
         * empty after it), and no read was registered or resumed since; see "Short reads" above. It and {@link
         * #betweenMessages} are plain fields: the fills and parses that write them run under the connection's lock,
         * which the registration of a read and the resumption of one are ordered with, and a stale value costs no
         * more than one read or one turn of the selector.
         */
        private boolean drained;
        /** Whether the connection's parser last stopped between two messages; only ever set on a relay's leg. */
        private boolean betweenMessages;

        @Override
        public void fillInterested(Callback callback) {
            drained = false;
            Callback adapted = adapt(callback);
            if (!handedOver(adapted)) {
                super.fillInterested(adapted);
                readEarly();
            }
        }

        @Override
        public boolean tryFillInterested(Callback callback) {
            drained = false;
            Callback adapted = adapt(callback);
            if (handedOver(adapted)) {
                return true;
            }
            boolean registered = super.tryFillInterested(adapted);
            if (registered) {
                readEarly();
            }
            return registered;
        }

        /** Hands {@code callback} to the watch registered in its place, if one is: the socket's interest stays. */
        private boolean handedOver(Callback callback) {
            Watch current = watch;
            if (current == null || !current.handOver(callback)) {
                return false;
            }
            notIdle();
            return true;
        }

        /**
         * Jetty's HTTP connection aborts a response that completes while a read is registered: the watch's read is
         * not the connection's.
         */
        @Override
        public boolean isFillInterested() {
            Watch current = watch;
            return super.isFillInterested() && (current == null || !current.alone());
        }

        /**
         * Signals a read just registered at once when the watch holds bytes for it: the socket has none to signal.
         * (Jetty's connections fill before they register, so this is a safety net.)
         */
        private void readEarly() {
            Connector home = connector;
            if (early != null && home != null) {
                home.getExecutor().execute(() -> getFillInterest().fillable());
            }
        }

        /**
         * Closes a WebSocket connection's end point with a {@link ClosedChannelException} that has no stack trace,
         * where Jetty would create two with one (for the read interest and for the frame flusher): walking the stack
         * twice for every closing WebSocket connection was 5 % of the CPU of a handshake storm. The connection and
         * its callbacks see the same exception type as before; nothing logs it above debug level.
         */
        @Override
        public void onClose(@Nullable Throwable cause) {
            if (cause == null && getConnection() instanceof WebSocketConnection) {
                cause = new Closed();
            }
            // Tells SelectorTasks which selector this end point's clean-up belongs to.
            ManagedSelector outer = CLOSING.get();
            CLOSING.set(selector);
            try {
                super.onClose(cause);
            } finally {
                CLOSING.set(outer);
            }
        }

        private Callback adapt(Callback callback) {
            if (!(getConnection() instanceof WebSocketConnection)
                    || callback.getInvocationType() != Invocable.InvocationType.BLOCKING) {
                return callback;
            }
            NonBlocking last = adapted;
            if (last != null && last.callback() == callback) {
                return last;
            }
            NonBlocking adaptation = new NonBlocking(callback);
            adapted = adaptation;
            return adaptation;
        }
    }

    /**
     * Told by a relay leg's WebSocket parser, after each parse, whether it stopped between two messages, and whether
     * the socket is to linger when the proxy closes it: from the parser's installation until the peer's close frame.
     */
    interface ParseBoundaries {

        void parsed(boolean betweenMessages);

        default void lingers(boolean lingers) {
        }
    }

    private static final int LINGER_NONE = 0;
    private static final int LINGER_ARMED = 1;
    private static final int LINGER_OFF = 2;

    /** How long a lingering close waits for the peer to end its stream. */
    static final long LINGER_MILLIS = 5_000;
    /**
     * How many bytes a lingering close reads and discards at most: more than the socket buffers between a peer that
     * was stalled and the proxy hold with Linux's default limits (4 MiB to send, 6 MiB to receive; 32 MiB where
     * raised, as on the machines the tests run on).
     */
    static final long LINGER_BYTES = 64 << 20;
    /** How many sockets linger at most in this JVM: past it, sockets close at once, as they did without lingering. */
    static final int MAX_LINGERING = 4096;

    /**
     * Drops {@code session}'s connection at once, with no lingering close: for a peer that did not answer a close in
     * time, that cannot be written to, or a drain deadline passed.
     */
    static void abort(CoreSession session) {
        WebSocketConnection connection = session instanceof WebSocketCoreSession core ? core.getConnection() : null;
        if (connection != null) {
            EndPoint endPoint = connection.getEndPoint();
            if (endPoint instanceof StreamEndPoint) {
                resetStream(endPoint);
            } else {
                // A socket, perhaps under a wrapper (the PROXY protocol's end point): no lingering for a dropped leg.
                while (endPoint instanceof EndPoint.Wrapper wrapper) {
                    endPoint = wrapper.unwrap();
                }
                if (endPoint instanceof SelectorReadEndPoint socket) {
                    socket.lingers(false);
                }
            }
        }
        session.abort();
    }

    /**
     * Resets the stream under {@code endPoint}, a stream of a multiplexed connection (an HTTP/2 client's WebSocket,
     * RFC 8441): closing such an end point only forgets the stream, with no word to the peer, and leaves a write that
     * waits for the peer's flow-control window pending for good, and with it the session, which then never ended:
     * a client that stopped reading held its stream, its session and its connection slot after the drain deadline,
     * until the server stopped. Cancelling the write resets the stream ({@code RST_STREAM}) and fails the pending
     * write; socket end points are closed as they were.
     */
    private static void resetStream(EndPoint endPoint) {
        ClosedChannelException cause = new Closed();
        Callback pending = endPoint.cancelWrite(cause);
        if (pending != null) {
            pending.failed(cause);
        }
    }

    /** How many sockets linger now, in this JVM. */
    public static int lingering() {
        return Linger.COUNT.get();
    }

    /**
     * A socket's lingering close (see "Lingering close" above): its output shut down, it reads and discards what the
     * peer still sends until the end of the stream, an error, {@link #LINGER_BYTES} or {@link #LINGER_MILLIS}, then
     * closes. It takes the socket's selection key from the end point, on the selector's thread, and keeps neither the
     * end point nor its connection. A selector that stops closes its lingering sockets first.
     */
    private static final class Linger implements ManagedSelector.Selectable, ManagedSelector.SelectorUpdate, Closeable {

        static final AtomicInteger COUNT = new AtomicInteger();
        /** The lingering sockets of each running selector, closed when it stops. */
        private static final Map<ManagedSelector, Set<Linger>> BY_SELECTOR = new ConcurrentHashMap<>();
        /**
         * What lingering sockets are read into, one buffer per thread that read one: a selector's thread, or a pool
         * thread that took over its selecting (Jetty's execution strategy hands that role on), so at most the pool's
         * threads × 64 KiB of direct memory, kept until the thread ends (the JDK would keep as much per thread for a
         * heap buffer's reads).
         */
        private static final ThreadLocal<ByteBuffer> SCRATCH =
                ThreadLocal.withInitial(() -> ByteBuffer.allocateDirect(64 * 1024));

        private final ManagedSelector selector;
        private final SocketChannel channel;
        private final Set<Linger> siblings;
        private final AtomicBoolean closed = new AtomicBoolean();
        /** The end point whose key this takes; {@code null} once taken. */
        private volatile @Nullable SelectorReadEndPoint socket;
        private volatile Scheduler.@Nullable Task timer;
        private long discarded;

        private Linger(SelectorReadEndPoint socket, Set<Linger> siblings) {
            this.socket = socket;
            this.selector = socket.selector;
            this.channel = socket.getChannel();
            this.siblings = siblings;
        }

        /** Begins {@code socket}'s lingering close and returns {@code true}, or returns {@code false} if it cannot. */
        static boolean begin(SelectorReadEndPoint socket) {
            ManagedSelector selector = socket.selector;
            if (!selector.isRunning() || !socket.getChannel().isOpen()
                    || !socket.scheduler.isRunning()) {
                return false;
            }
            if (COUNT.incrementAndGet() > MAX_LINGERING) {
                COUNT.decrementAndGet();
                return false;
            }
            Linger linger = new Linger(socket, BY_SELECTOR.computeIfAbsent(selector, Linger::register));
            linger.siblings.add(linger);
            try {
                // The close frame is out: the peer reads it, then the end of the stream (Jetty's frame flusher has
                // shut the output down after a close frame already; not on every path that closes).
                socket.getChannel().shutdownOutput();
                socket.lingering = true;
                linger.timer = socket.scheduler.schedule(linger::close, LINGER_MILLIS, TimeUnit.MILLISECONDS);
                selector.submit(linger);
                if (!selector.isRunning()) {
                    // Stopping: the update may come after the selector closed its sockets.
                    linger.close();
                }
            } catch (IOException | RuntimeException e) {
                // A socket reset meanwhile: close it now.
                linger.close();
            }
            return true;
        }

        /** The set of {@code selector}'s lingering sockets, closed when it begins to stop. */
        private static Set<Linger> register(ManagedSelector selector) {
            Set<Linger> lingers = ConcurrentHashMap.newKeySet();
            selector.addEventListener(new LifeCycle.Listener() {
                @Override
                public void lifeCycleStopping(LifeCycle event) {
                    BY_SELECTOR.remove(selector);
                    for (Linger linger : lingers) {
                        linger.close();
                    }
                }
            });
            return lingers;
        }

        /** Takes the socket's key, on the selector's thread, and reads. */
        @Override
        public void update(Selector jdkSelector) {
            SelectorReadEndPoint owner = socket;
            socket = null;
            SelectionKey key = owner == null ? null : owner.key;
            if (closed.get() || key == null || !key.isValid()) {
                close();
                return;
            }
            try {
                key.attach(this);
                key.interestOps(SelectionKey.OP_READ);
            } catch (CancelledKeyException e) {
                close();
            }
        }

        @Override
        public @Nullable Runnable onSelected() {
            ByteBuffer buffer = SCRATCH.get();
            try {
                // At most 256 KiB per turn of the selector, whose other sockets wait meanwhile; a socket with more to
                // read is selected again.
                long budget = discarded + 256 * 1024;
                int read;
                do {
                    buffer.clear();
                    read = channel.read(buffer);
                    discarded += Math.max(read, 0);
                } while (read > 0 && discarded < Math.min(budget, LINGER_BYTES));
                if (read < 0 || discarded >= LINGER_BYTES) {
                    close();
                }
            } catch (IOException e) {
                close();
            }
            return null;
        }

        @Override
        public void updateKey() {
        }

        @Override
        public void replaceKey(SelectionKey newKey) {
        }

        @Override
        public void close() {
            if (!closed.compareAndSet(false, true)) {
                return;
            }
            COUNT.decrementAndGet();
            siblings.remove(this);
            socket = null;
            Scheduler.Task task = timer;
            if (task != null) {
                task.cancel();
            }
            IO.close(channel);
            // The JDK ends a socket registered with a selector at that selector's next select.
            wake(selector);
        }

        @Override
        public String toString() {
            return "Linger@" + Integer.toHexString(hashCode()) + "[" + channel + "]";
        }
    }

    /**
     * What a WebSocket connection's parser on {@code endPoint} tells where it stopped, so that a short read at the
     * end of a message is trusted (see "Short reads" above); {@code null} when the end point is not one of these
     * connectors' sockets (a TLS connection's, a foreign connector's).
     */
    static @Nullable ParseBoundaries parseBoundaries(EndPoint endPoint) {
        return endPoint instanceof SelectorReadEndPoint socket ? socket : null;
    }

    /** At most this many bytes a client sends before its {@code 101} are read while its handshake waits. */
    private static final int EARLY_BYTES = 4096;

    /**
     * The read a client socket registers while its upgrade request waits for the backend (see "Watching a waiting
     * client" above). Armed, it probes the socket when it turns readable: at the end of the stream it runs the
     * handshake's {@code onGone}; bytes (a client that speaks early, a TLS alert) are kept for the connection's next
     * fills, and it keeps watching until {@link #EARLY_BYTES} are held. Disarmed, it stays registered without
     * reading. A read the connection registers while this one is registered is handed over to it: the socket's
     * interest does not change. Every step runs under this object's lock, so a probe never reads beside the
     * connection.
     */
    private static final class Watch implements Callback {

        private final SelectorReadEndPoint socket;
        /** What runs when the client is gone; {@code null} when disarmed. */
        private @Nullable Runnable onGone;
        /** Whether this watch is the end point's registered read; written under the lock, read before it too. */
        private volatile boolean registered;
        /** The connection's read, handed over while this watch was registered. */
        private @Nullable Callback next;
        /** Whether this watch told the selector, since it last registered, that it runs without blocking. */
        private boolean toldNonBlocking;

        Watch(SelectorReadEndPoint socket) {
            this.socket = socket;
        }

        boolean arm(Runnable gone) {
            synchronized (this) {
                if (next != null) {
                    return false;
                }
                onGone = gone;
                if (registered) {
                    return true;
                }
                registered = true;
                toldNonBlocking = false;
            }
            if (socket.register(this)) {
                return true;
            }
            unregistered();
            return false;
        }

        /** The registration this watch counted on failed: a read handed over meanwhile is registered as it asked. */
        private void unregistered() {
            Callback late;
            synchronized (this) {
                registered = false;
                onGone = null;
                late = next;
                next = null;
            }
            if (late != null) {
                try {
                    socket.fillInterested(late);
                } catch (ReadPendingException e) {
                    // What registering would have told it, had it not been handed over: another read holds the slot.
                    late.failed(e);
                }
            }
        }

        synchronized void disarm() {
            onGone = null;
        }

        /**
         * Takes {@code callback} as the read to signal, if this watch is registered; the watch is then over. Without
         * the lock when it is not: the connection's every read after its first.
         */
        boolean handOver(Callback callback) {
            if (!registered) {
                return false;
            }
            synchronized (this) {
                if (!registered || next != null) {
                    return false;
                }
                next = callback;
                onGone = null;
                return true;
            }
        }

        /** Whether this watch is registered for nobody but itself. */
        boolean alone() {
            if (!registered) {
                return false;
            }
            synchronized (this) {
                return registered && next == null;
            }
        }

        @Override
        public void succeeded() {
            Callback handedOver;
            Runnable gone = null;
            boolean again = false;
            boolean asNonBlocking;
            synchronized (this) {
                registered = false;
                asNonBlocking = toldNonBlocking;
                handedOver = next;
                next = null;
                if (handedOver == null && onGone != null) {
                    int probed = socket.probe();
                    if (probed < 0) {
                        gone = onGone;
                        onGone = null;
                    } else if (probed == 0) {
                        registered = again = true;
                        toldNonBlocking = false;
                    } else {
                        onGone = null;
                    }
                }
            }
            if (handedOver != null) {
                signal(handedOver, asNonBlocking);
                return;
            }
            if (gone != null) {
                gone.run();
            }
            if (again && !socket.register(this)) {
                unregistered();
            }
        }

        /**
         * Signals the read handed over. The selector chose how to run this watch from its invocation type when it
         * selected it: when that was this watch's own ({@code NON_BLOCKING}, {@code asNonBlocking}), a read that may
         * block goes to the pool and one that may run either way is told not to block; otherwise the selector chose
         * for the read itself.
         */
        private void signal(Callback handedOver, boolean asNonBlocking) {
            InvocationType type = handedOver.getInvocationType();
            if (!asNonBlocking || type == InvocationType.NON_BLOCKING) {
                handedOver.succeeded();
                return;
            }
            if (type == InvocationType.EITHER) {
                Invocable.invokeNonBlocking(handedOver::succeeded);
                return;
            }
            try {
                Connector home = socket.connector;
                if (home == null) {
                    throw new RejectedExecutionException("no connector");
                }
                home.getExecutor().execute(handedOver::succeeded);
            } catch (RejectedExecutionException e) {
                handedOver.failed(e);
            }
        }

        @Override
        public void failed(Throwable failure) {
            Callback handedOver;
            Runnable gone;
            synchronized (this) {
                registered = false;
                handedOver = next;
                next = null;
                gone = handedOver == null ? onGone : null;
                onGone = null;
            }
            if (handedOver != null) {
                handedOver.failed(failure);
                return;
            }
            if (gone != null) {
                gone.run();
            }
            if (failure instanceof TimeoutException timeout) {
                // Jetty closes an idle end point whose read it did not fail: this watch's read is not the connection's.
                socket.close(timeout);
            }
        }

        @Override
        public InvocationType getInvocationType() {
            Callback handedOver;
            synchronized (this) {
                handedOver = next;
                if (handedOver == null) {
                    toldNonBlocking = true;
                }
            }
            return handedOver == null ? InvocationType.NON_BLOCKING : handedOver.getInvocationType();
        }
    }

    /** A socket closed as asked, for which the stack trace tells nothing. */
    private static final class Closed extends ClosedChannelException {

        private static final long serialVersionUID = 1L;

        @Override
        public synchronized Throwable fillInStackTrace() {
            return this;
        }
    }

    /** {@code callback}, run as a non-blocking task: on the thread that signals it, the selector's. */
    private record NonBlocking(Callback callback) implements Callback {

        @Override
        public void succeeded() {
            callback.succeeded();
        }

        @Override
        public void failed(Throwable failure) {
            callback.failed(failure);
        }

        @Override
        public InvocationType getInvocationType() {
            return InvocationType.NON_BLOCKING;
        }
    }
}
