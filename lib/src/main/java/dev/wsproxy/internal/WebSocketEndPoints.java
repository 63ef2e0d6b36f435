package dev.wsproxy.internal;

import java.nio.channels.ClosedChannelException;
import java.nio.channels.SelectableChannel;
import java.nio.channels.SelectionKey;
import java.nio.channels.SocketChannel;
import java.util.Map;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;

import org.eclipse.jetty.io.ClientConnector;
import org.eclipse.jetty.io.EndPoint;
import org.eclipse.jetty.io.ManagedSelector;
import org.eclipse.jetty.io.SelectorManager;
import org.eclipse.jetty.io.SocketChannelEndPoint;
import org.eclipse.jetty.io.Transport;
import org.eclipse.jetty.server.ConnectionFactory;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.ProcessorUtils;
import org.eclipse.jetty.util.thread.Invocable;
import org.eclipse.jetty.util.thread.QueuedThreadPool;
import org.eclipse.jetty.util.thread.Scheduler;
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
 * <h2>Threads</h2>
 * The selectors are now where relaying happens: client-to-backend frames on the server connector's selectors,
 * backend-to-client frames on the backend client's. The backend client gets as many selectors as Jetty gives a server
 * connector by default, half the available processors.
 */
public final class WebSocketEndPoints {

    private static final Logger LOG = LoggerFactory.getLogger(WebSocketEndPoints.class);

    private WebSocketEndPoints() {
    }

    /**
     * A server connector on {@code server} whose WebSocket connections read on the selector thread, and whose
     * selectors accept connections (no acceptor thread).
     */
    public static ServerConnector serverConnector(Server server, ConnectionFactory... factories) {
        return new Connector(server, factories);
    }

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

        Connector(Server server, ConnectionFactory... factories) {
            super(server, 0, -1, factories);
        }

        @Override
        protected SocketChannelEndPoint newEndPoint(SocketChannel channel, ManagedSelector selector, SelectionKey key) {
            SocketChannelEndPoint endPoint = new SelectorReadEndPoint(channel, selector, key, getScheduler());
            endPoint.setIdleTimeout(getIdleTimeout());
            return endPoint;
        }

        @Override
        protected SelectorManager newSelectorManager(Executor executor, Scheduler scheduler, int selectors) {
            return new ServerConnectorManager(executor, scheduler, selectors) {
                @Override
                protected void execute(Runnable task) {
                    if (!SelectorTasks.runOnSelector(task, this, pooled -> super.execute(pooled))) {
                        super.execute(task);
                    }
                }
            };
        }
    }

    private static final class Client extends ClientConnector {

        @Override
        protected EndPoint newEndPoint(SelectableChannel selectable, ManagedSelector selector, SelectionKey key) {
            @SuppressWarnings("unchecked")
            Map<String, Object> context = (Map<String, Object>) key.attachment();
            if (context != null && context.get(Transport.CONTEXT_KEY) == Transport.TCP_IP
                    && selectable instanceof SocketChannel channel) {
                // What Transport.TCP_IP.newEndPoint does, with the subclass.
                return new SelectorReadEndPoint(channel, selector, key, getScheduler());
            }
            return super.newEndPoint(selectable, selector, key);
        }

        @Override
        protected SelectorManager newSelectorManager() {
            return new ClientSelectorManager(getExecutor(), getScheduler(), getSelectors()) {
                @Override
                protected void execute(Runnable task) {
                    if (!SelectorTasks.runOnSelector(task, this, pooled -> super.execute(pooled))) {
                        super.execute(task);
                    }
                }
            };
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

    /** The pool of {@link #threadPool()}. */
    private static final class Pool extends QueuedThreadPool {

        @Override
        public void execute(Runnable job) {
            if (!runResumed(job)) {
                super.execute(job);
            }
        }
    }

    private static final class SelectorReadEndPoint extends SocketChannelEndPoint {

        /** The last callback adapted, and its adaptation: a WebSocket connection passes the same callback each time. */
        private volatile @Nullable NonBlocking adapted;

        /** The selector of this end point. */
        private final ManagedSelector selector;

        SelectorReadEndPoint(SocketChannel channel, ManagedSelector selector, SelectionKey key, Scheduler scheduler) {
            super(channel, selector, key, scheduler);
            this.selector = selector;
        }

        @Override
        public void fillInterested(Callback callback) {
            super.fillInterested(adapt(callback));
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

        @Override
        public boolean tryFillInterested(Callback callback) {
            return super.tryFillInterested(adapt(callback));
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
