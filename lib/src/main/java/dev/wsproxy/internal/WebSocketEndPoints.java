package dev.wsproxy.internal;

import java.nio.channels.SelectableChannel;
import java.nio.channels.SelectionKey;
import java.nio.channels.SocketChannel;
import java.util.Map;

import org.eclipse.jetty.io.ClientConnector;
import org.eclipse.jetty.io.EndPoint;
import org.eclipse.jetty.io.ManagedSelector;
import org.eclipse.jetty.io.SocketChannelEndPoint;
import org.eclipse.jetty.io.Transport;
import org.eclipse.jetty.server.ConnectionFactory;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.ProcessorUtils;
import org.eclipse.jetty.util.thread.Invocable;
import org.eclipse.jetty.util.thread.Scheduler;
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
 * that does not complete at once still completes on a pool thread (Jetty's write flusher decides), and a demand made
 * outside a read (after such a write) is still run by the connection's executor.
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
