package dev.wsproxy.internal;

import java.nio.channels.ClosedChannelException;
import java.nio.channels.SelectableChannel;
import java.nio.channels.SelectionKey;
import java.nio.channels.SocketChannel;
import java.util.Map;
import java.util.concurrent.Executor;

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
import org.jspecify.annotations.Nullable;

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
 * waking thread can do itself. Reads resumed by the relay run on the thread that resumes them instead: always on the
 * backend leg (its connection is the relay's, {@link #resumingExecutor}), and on the client leg when the server's
 * pool is {@link #threadPool()} (the standalone proxy's; a server of the application keeps its own pool, and its
 * client legs keep the hand-off). A resumed read runs at most once per leg at a time (Jetty's connection refuses to
 * re-enter), so nesting stays shallow: a read on one leg can resume the other, never itself.
 *
 * <h2>Selector tasks</h2>
 * Jetty's selectors also hand three tasks of their own to the pool: creating the end point and connection of an
 * accepted or connected socket, and closing a connection's state after its socket closed. These connectors run the
 * first two on the selector thread (the connection factories they use do not block: HTTP/1.1, TLS, the backend
 * handshake) and queue the third to the selector, as an update it runs between two selects, outside the locks of
 * whoever closed the socket. A storm of handshakes costs about half the context switches it did.
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
     * The executor of a backend leg's connection ({@code pool} otherwise): the connection hands it nothing but its
     * reads resumed by the relay, which run on the resuming thread.
     */
    static Executor resumingExecutor(Executor pool) {
        return task -> {
            if (task instanceof WebSocketConnection) {
                task.run();
            } else {
                pool.execute(task);
            }
        };
    }

    /**
     * Demands the next frame of a relay leg. When that resumes the leg's read, {@link #threadPool()} runs it on this
     * thread; the relay calls no other code that asks the pool to run a WebSocket connection.
     */
    static void demand(CoreSession session) {
        if (RESUMING.get() == Boolean.TRUE) {
            session.demand();
            return;
        }
        RESUMING.set(Boolean.TRUE);
        try {
            session.demand();
        } finally {
            RESUMING.set(Boolean.FALSE);
        }
    }

    /** Whether this thread is in {@link #demand}. */
    private static final ThreadLocal<Boolean> RESUMING = new ThreadLocal<>();

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
                    if (!SelectorTasks.runOnSelector(task, this, this::chooseSelector)) {
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
                    if (!SelectorTasks.runOnSelector(task, this, this::chooseSelector)) {
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

        /** Runs {@code task} on a selector and returns {@code true}, or returns {@code false} for the pool to. */
        static boolean runOnSelector(Runnable task, SelectorManager manager,
                java.util.function.Supplier<ManagedSelector> selectors) {
            Class<?> type = task.getClass();
            if (type == ACCEPT || type == CREATE) {
                // Called by the selector thread, while it processes its keys or updates.
                task.run();
                return true;
            }
            if (type == DESTROY && manager.isRunning()) {
                // Called by whoever closed the socket: queued, so that it runs outside that caller's locks. Updates
                // queued while the manager runs are all applied before its selectors stop.
                selectors.get().submit(selector -> task.run());
                return true;
            }
            return false;
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

    /** The pool of {@link #threadPool()}. */
    private static final class Pool extends QueuedThreadPool {

        @Override
        public void execute(Runnable job) {
            if (job instanceof WebSocketConnection && RESUMING.get() == Boolean.TRUE) {
                job.run();
            } else {
                super.execute(job);
            }
        }
    }

    private static final class SelectorReadEndPoint extends SocketChannelEndPoint {

        /** The last callback adapted, and its adaptation: a WebSocket connection passes the same callback each time. */
        private volatile @Nullable NonBlocking adapted;

        SelectorReadEndPoint(SocketChannel channel, ManagedSelector selector, SelectionKey key, Scheduler scheduler) {
            super(channel, selector, key, scheduler);
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
            super.onClose(cause);
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
