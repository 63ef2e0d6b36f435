package dev.wsproxy.internal;

import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import org.eclipse.jetty.http.HttpFields;
import org.eclipse.jetty.http.HttpStatus;
import org.eclipse.jetty.io.Connection;
import org.eclipse.jetty.server.AbstractMetaDataConnection;
import org.eclipse.jetty.server.ConnectionFactory;
import org.eclipse.jetty.server.ConnectionMetaData;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.HttpConfiguration;
import org.eclipse.jetty.server.HttpConnectionFactory;
import org.eclipse.jetty.server.HttpStream;
import org.eclipse.jetty.server.NegotiatingServerConnection;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.util.NanoTime;
import org.eclipse.jetty.util.thread.Scheduler;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The slowloris guard: closes HTTP/1 connections that do not deliver a complete request head within a deadline, and
 * caps how many connections may be waiting for one at a time.
 *
 * <h2>What is pending</h2>
 * A connection is <em>pending</em> while it waits for a request head: from the moment Jetty opens its HTTP/1
 * connection (at accept; over TLS that includes the TLS handshake) until the head is parsed, and again from the end of
 * each exchange until the next head on a keep-alive connection (HAProxy's {@code timeout http-request} does the same
 * when no {@code http-keep-alive} timeout is set). Over TLS with ALPN, Jetty opens no HTTP/1 connection until the
 * TLS handshake has chosen the protocol: the connection that negotiates it ({@link NegotiatingServerConnection}) is
 * pending through the handshake instead, so that a client stalled in the middle of it is closed at the deadline,
 * not held until the connector's idle timeout (which a client dripping its {@code ClientHello} restarts). It is
 * forgotten once the protocol is chosen (Jetty then swaps in the protocol's connection): an HTTP/1 one is pending
 * from then on with a deadline of its own, so such a client has up to two deadlines in all, one for its TLS
 * handshake and one for its head; an HTTP/2 one is not followed. A connection whose request is being handled (a
 * WebSocket upgrade waiting for its backend, a long download) is not pending: the backend connect timeout and the
 * connector's idle timeout govern it. A connection upgraded to WebSocket is forgotten for good. Jetty's idle timeout
 * cannot do this job: it restarts on every byte, so a client dripping one header byte a second would hold a connection
 * forever.
 *
 * <h2>How it hooks into Jetty</h2>
 * {@link #install(Server)} adds this object to every connector that has an {@link HttpConnectionFactory}, twice: as a
 * {@link Connection.Listener}, which Jetty attaches to each connection the connector creates (it sees the HTTP/1
 * connection, or the ALPN one, open at accept and close at upgrade or disconnect), and as a
 * {@link HttpConfiguration.Customizer} of the factory's configuration, which Jetty calls for every request once its
 * head is parsed, before any handler runs. So the guard works the same for the standalone server and in a user's own
 * {@code Server}, and for every request on the connectors, whichever handler takes it. {@link #uninstall()} removes
 * both.
 *
 * <h2>Deadline</h2>
 * Pending connections are kept oldest first, and all have the same timeout, so the oldest is the next to expire: one
 * scheduler task at a time, set for the oldest's deadline, closes every overdue connection and re-arms for the next;
 * it is cancelled when nothing is pending. No thread waits; a connection that closes is forgotten at once.
 *
 * <h2>Access line</h2>
 * Standalone ({@code accessLog} at {@link #install}), a connection closed at the deadline after it sent part of a
 * request head gets an access line, {@code status=408 reason=header_timeout} ({@link AccessLog#unrouted}), as from
 * nginx when its {@code client_header_timeout} expires. One that sent nothing since it became pending gets none: a
 * browser's speculative preconnect, or a keep-alive connection idle between requests. Nor does one Jetty has already
 * answered (its parser's refusal, logged by the error handler) or one that waits only for its client's end after a
 * non-persistent exchange. The bytes are Jetty's counts of the connection, read when it becomes pending and at the
 * deadline: nothing more per request. A connection its client ends in the middle of a head is logged by the error
 * handler, which Jetty calls with its "Early EOF" ({@link PlainErrorHandler}); one the deadline closes is marked
 * ({@link #EXPIRED}) so that the error handler does not log it too, when Jetty fails its head so. Mounted, there is no line: the user's
 * server has its own request log, and Jetty's refusals are not logged either.
 *
 * <h2>Cap</h2>
 * When a connection would become pending while {@code maxPending} are, the oldest pending connection is closed (not
 * the new one). A flood of stalled sockets then mostly evicts itself, while a real client, whose head follows its
 * connect within a round trip, is pending only briefly: to shut real clients out an attacker must cycle the whole cap
 * within one client round trip, instead of within one handshake timeout if new connections were refused.
 *
 * <p>Thread-safe: listener and customizer callbacks come from Jetty's selector, pool and scheduler threads. One lock
 * guards the bookkeeping; connections are closed outside it.
 */
public final class HandshakeGuard implements Connection.Listener, HttpConfiguration.Customizer {

    private static final Logger LOG = LoggerFactory.getLogger(HandshakeGuard.class);

    /**
     * The attribute of a connection the deadline closed, set before the close: Jetty may then fail its request head
     * with an "Early EOF", as if its client had ended it, and the error handler must not log it twice.
     */
    static final String EXPIRED = HandshakeGuard.class.getName() + ".expired";

    /** The least time between two INFO lines about evictions, during a flood. */
    private static final long EVICTION_LOG_INTERVAL = TimeUnit.SECONDS.toNanos(10);

    private final long timeoutNanos;
    private final int maxPending;
    private final Object lock = new Object();
    /** Every connection the guard follows (HTTP/1, or negotiating ALPN), pending or not; guarded by {@link #lock}. */
    private final Map<Connection, Watch> watched = new HashMap<>();
    /** The pending ones, oldest first; guarded by {@link #lock}. */
    private final LinkedHashSet<Watch> pending = new LinkedHashSet<>();
    /** Set by {@link #closeIdle}: a connection whose exchange ends is closed, not made pending; guarded by lock. */
    private boolean closingIdle;
    private final List<Connector> connectors = new ArrayList<>();
    private final List<HttpConfiguration> configurations = new ArrayList<>();
    private Scheduler.@Nullable Task sweep;
    /**
     * Counts the deadline tasks scheduled; a task runs only if it is still the latest. A task that has started when it
     * is cancelled (waiting for the lock) would otherwise schedule a second chain beside the one that replaced it.
     */
    private long sweeps;
    private @Nullable Scheduler scheduler;
    private volatile @Nullable Executor executor;
    /** Whether a connection closed at the deadline in the middle of a head gets an access line. */
    private volatile boolean accessLog;
    private long evictions;
    private long evictionsLogged;
    private long lastEvictionLog;
    private long expirations;

    /**
     * @param timeout the time a connection has to deliver a request head; {@link Duration#ZERO} for no deadline
     * @param maxPending the most pending connections; {@link Integer#MAX_VALUE} for no cap
     */
    public HandshakeGuard(Duration timeout, int maxPending) {
        this.timeoutNanos = timeout.toNanos();
        this.maxPending = maxPending;
    }

    /**
     * Starts guarding the connectors the server has now: those with an HTTP/1 connection factory.
     *
     * @param accessLog whether a connection closed at the deadline in the middle of a request head gets an access
     *        line: the standalone proxy's, whose server has no request log of its own
     */
    public void install(Server server, boolean accessLog) {
        this.accessLog = accessLog;
        synchronized (lock) {
            closingIdle = false;
            scheduler = server.getScheduler();
            executor = server.getThreadPool();
            for (Connector connector : server.getConnectors()) {
                boolean http1 = false;
                for (ConnectionFactory factory : connector.getConnectionFactories()) {
                    if (factory instanceof HttpConnectionFactory http) {
                        http1 = true;
                        HttpConfiguration configuration = http.getHttpConfiguration();
                        if (!configuration.getCustomizers().contains(this)) {
                            configuration.addCustomizer(this);
                            configurations.add(configuration);
                        }
                    }
                }
                if (http1 && connector.addEventListener(this)) {
                    connectors.add(connector);
                }
            }
        }
        if (LOG.isDebugEnabled()) {
            LOG.debug("Guarding {}: handshake timeout {} ms, at most {} pending", connectors,
                    TimeUnit.NANOSECONDS.toMillis(timeoutNanos), maxPending);
        }
    }

    /** Stops guarding: removes the listener and customizer, cancels the deadline task and forgets every connection. */
    public void uninstall() {
        synchronized (lock) {
            for (Connector connector : connectors) {
                connector.removeEventListener(this);
            }
            connectors.clear();
            for (HttpConfiguration configuration : configurations) {
                configuration.removeCustomizer(this);
            }
            configurations.clear();
            cancelSweepLocked();
            watched.clear();
            pending.clear();
            scheduler = null;
            executor = null;
        }
    }

    /** The connections waiting for a request head now. */
    public int pending() {
        synchronized (lock) {
            return pending.size();
        }
    }

    /** The connections followed now: pending ones and those with a request in progress. */
    public int watched() {
        synchronized (lock) {
            return watched.size();
        }
    }

    @Override
    public void onOpened(Connection connection) {
        // HTTP/1 only (HTTP/2 multiplexes: a head does not end its waiting), and only from a guarded factory; and the
        // connection that negotiates the protocol (ALPN) during a TLS handshake, on a guarded connector.
        boolean negotiating = connection instanceof NegotiatingServerConnection;
        if (!negotiating && (!(connection instanceof AbstractMetaDataConnection http1)
                || !http1.getHttpConfiguration().getCustomizers().contains(this))) {
            return;
        }
        Connection evicted;
        synchronized (lock) {
            if (scheduler == null
                    || negotiating && !connectors.contains(((NegotiatingServerConnection) connection).getConnector())) {
                return;
            }
            Watch watch = new Watch(connection);
            watched.put(connection, watch);
            evicted = makePendingLocked(watch, true);
        }
        close(evicted, "evicted: too many connections waiting for a request head");
    }

    @Override
    public void onClosed(Connection connection) {
        synchronized (lock) {
            Watch watch = watched.remove(connection);
            if (watch != null && pending.remove(watch) && pending.isEmpty()) {
                cancelSweepLocked();
            }
        }
    }

    /**
     * Closes every pending connection whose client has sent nothing of a request head (kept alive between two
     * exchanges, or new and silent, or waiting for its client's end after a refusal), and from now on each connection
     * as its exchange ends instead of making it pending: for a stop that hands new connections to a successor on the
     * same address ({@code ProxyBuilder.reusePort}), so that those clients send their next request there rather than
     * get this proxy's {@code 503}. A connection in the middle of a head is left to finish it, and gets its answer.
     * Closed this way, a connection gets no access line, as one that sent nothing never does.
     */
    public void closeIdle() {
        List<Connection> idle = new ArrayList<>();
        synchronized (lock) {
            closingIdle = true;
            for (Iterator<Watch> watches = pending.iterator(); watches.hasNext();) {
                Watch watch = watches.next();
                if (!watch.startedHead()) {
                    watches.remove();
                    idle.add(watch.connection);
                }
            }
            if (pending.isEmpty()) {
                cancelSweepLocked();
            }
        }
        for (Connection connection : idle) {
            connection.getEndPoint().close();
        }
    }

    /** Called by Jetty for every request once its head is parsed, before any handler: the head came in time. */
    @Override
    public Request customize(Request request, HttpFields.Mutable responseHeaders) {
        Connection connection = request.getConnectionMetaData().getConnection();
        Watch watch;
        synchronized (lock) {
            watch = watched.get(connection);
            if (watch == null) {
                return request;
            }
            if (pending.remove(watch) && pending.isEmpty()) {
                cancelSweepLocked();
            }
        }
        Request.addCompletionListener(request, failure -> onExchangeEnd(watch, request, failure));
        return request;
    }

    /**
     * Runs when an exchange has completed, just before Jetty reads the next request or swaps in the upgraded
     * connection: a keep-alive connection is pending again, an upgraded one never again.
     *
     * <p>So is a connection that is not persistent (every refusal of the proxy says {@code Connection: close}): Jetty
     * shuts its output and, when the response was written before the handler returned, waits for the client's end of
     * the stream, which a client that keeps its socket open never sends. Left alone, such a connection lived until the
     * connector's idle timeout, counted nowhere; pending, it gets the deadline and the cap like a client that sends
     * nothing, and a client that closes at once is forgotten at once.
     */
    private void onExchangeEnd(Watch watch, Request request, @Nullable Throwable failure) {
        if (request.getAttribute(HttpStream.UPGRADE_CONNECTION_ATTRIBUTE) != null || failure != null) {
            return; // upgraded, or failed: Jetty closes a connection whose exchange failed
        }
        // Read before Jetty resets its generator for the next exchange, just after this listener.
        boolean nextHead = request.getConnectionMetaData().isPersistent();
        Connection evicted = null;
        boolean closeNow;
        synchronized (lock) {
            if (watched.get(watch.connection) != watch) {
                return; // closed meanwhile
            }
            closeNow = closingIdle;
            if (!closeNow) {
                evicted = makePendingLocked(watch, nextHead);
            }
        }
        if (closeNow) {
            // closeIdle: its client's next request goes to the successor.
            watch.connection.getEndPoint().close();
            return;
        }
        close(evicted, "evicted: too many connections waiting for a request head");
    }

    /**
     * Makes the connection pending from now on; returns the oldest pending connection if it must make room.
     * {@code nextHead} is false when Jetty reads no more requests on it, only its client's end.
     */
    private @Nullable Connection makePendingLocked(Watch watch, boolean nextHead) {
        Connection evicted = null;
        if (pending.size() >= maxPending) {
            Iterator<Watch> oldest = pending.iterator();
            Watch victim = oldest.next();
            oldest.remove();
            evicted = victim.connection;
            evictions++;
            long now = NanoTime.now();
            if (evictions == 1 || NanoTime.elapsed(lastEvictionLog, now) >= EVICTION_LOG_INTERVAL) {
                LOG.info("{} connections are waiting for a request head: closed the oldest {} since the last report",
                        maxPending, evictions - evictionsLogged);
                lastEvictionLog = now;
                evictionsLogged = evictions;
            }
        }
        pending.remove(watch);
        watch.since = NanoTime.now();
        watch.bytesIn = nextHead ? watch.connection.getBytesIn() : Watch.NO_HEAD;
        watch.bytesOut = watch.connection.getBytesOut();
        pending.add(watch);
        if (timeoutNanos > 0 && sweep == null) {
            scheduleSweepLocked();
        }
        return evicted;
    }

    private void scheduleSweepLocked() {
        Scheduler timer = scheduler;
        if (timer == null || pending.isEmpty()) {
            return;
        }
        Watch oldest = pending.iterator().next();
        long delay = Math.max(0, timeoutNanos - NanoTime.since(oldest.since));
        long generation = ++sweeps;
        sweep = timer.schedule(() -> sweep(generation), delay, TimeUnit.NANOSECONDS);
    }

    private void cancelSweepLocked() {
        Scheduler.Task task = sweep;
        sweep = null;
        sweeps++;
        if (task != null) {
            task.cancel();
        }
    }

    /** The deadline task: closes every overdue connection, then waits for the next one to be due. */
    private void sweep(long generation) {
        List<Watch> overdue = new ArrayList<>();
        synchronized (lock) {
            if (generation != sweeps) {
                return; // cancelled, or replaced, while it waited for the lock
            }
            sweep = null;
            long now = NanoTime.now();
            Iterator<Watch> oldestFirst = pending.iterator();
            while (oldestFirst.hasNext()) {
                Watch watch = oldestFirst.next();
                if (NanoTime.elapsed(watch.since, now) < timeoutNanos) {
                    break;
                }
                oldestFirst.remove();
                overdue.add(watch);
            }
            expirations += overdue.size();
            scheduleSweepLocked();
        }
        if (overdue.isEmpty()) {
            return;
        }
        if (LOG.isDebugEnabled()) {
            LOG.debug("Closing {} connections without a request head after {} ms", overdue.size(),
                    TimeUnit.NANOSECONDS.toMillis(timeoutNanos));
        }
        // Closing many sockets is not work for the scheduler's thread.
        Runnable closeAll = () -> overdue.forEach(this::expire);
        Executor pool = executor;
        try {
            if (pool == null) {
                closeAll.run();
            } else {
                pool.execute(closeAll);
            }
        } catch (RejectedExecutionException stopping) {
            closeAll.run();
        }
    }

    /**
     * Closes a connection at the deadline and, standalone, writes the access line of one that sent part of a head,
     * {@code 408} as from nginx; its duration is the time it waited for its head: since it opened, or since its last
     * exchange ended on a keep-alive connection.
     */
    private void expire(Watch watch) {
        // Read before the close: once closed, the connection reads nothing more and names no peer.
        boolean logged = accessLog && watch.startedHead();
        SocketAddress peer = logged ? watch.connection.getEndPoint().getRemoteSocketAddress() : null;
        if (watch.connection instanceof ConnectionMetaData connection) {
            connection.setAttribute(EXPIRED, Boolean.TRUE);
        }
        close(watch.connection, "no request head in time");
        if (logged) {
            AccessLog.unrouted(peer instanceof InetSocketAddress inet ? inet : HandshakeRequestView.UNKNOWN,
                    NanoTime.millisSince(watch.since), null, HttpStatus.REQUEST_TIMEOUT_408, "header_timeout");
        }
    }

    /** Closes the connection's TCP connection: nothing can be answered in the middle of a request head. */
    private static void close(@Nullable Connection connection, String reason) {
        if (connection != null) {
            connection.getEndPoint().close(new HeadTimeout(reason));
        }
    }

    @Override
    public String toString() {
        synchronized (lock) {
            return "HandshakeGuard[timeout=" + TimeUnit.NANOSECONDS.toMillis(timeoutNanos) + "ms, pending="
                    + pending.size() + "/" + maxPending + ", watched=" + watched.size() + ", expired=" + expirations
                    + ", evicted=" + evictions + "]";
        }
    }

    /**
     * One followed connection; {@link #since} is when it last became pending, {@link #bytesIn} and {@link #bytesOut}
     * what Jetty had read from it and written to it then (guarded by the guard's lock; read after they are published
     * under it, by the deadline task that took the watch under the lock).
     */
    private static final class Watch {
        /** The {@link #bytesIn} of a connection on which Jetty reads no more requests. */
        static final long NO_HEAD = -1;

        final Connection connection;
        long since;
        long bytesIn;
        long bytesOut;

        Watch(Connection connection) {
            this.connection = connection;
        }

        /**
         * Whether the client sent bytes of a request head since the connection became pending, and Jetty answered
         * nothing (its refusal of a bad head, which has its own line).
         */
        boolean startedHead() {
            return bytesIn != NO_HEAD && connection.getBytesIn() > bytesIn && connection.getBytesOut() == bytesOut;
        }
    }

    /** Why a connection was closed; without a stack trace, which would cost more than the close itself. */
    private static final class HeadTimeout extends TimeoutException {
        private static final long serialVersionUID = 1L;

        HeadTimeout(String reason) {
            super(reason);
        }

        @Override
        public synchronized Throwable fillInStackTrace() {
            return this;
        }
    }
}
