package dev.wsproxy.internal;

import static java.util.Objects.requireNonNull;

import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerFieldUpdater;

import org.eclipse.jetty.io.AbstractEndPoint;
import org.eclipse.jetty.io.EndPoint;
import org.eclipse.jetty.io.WriteFlusher;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.NanoTime;
import org.eclipse.jetty.util.thread.Scheduler;
import org.eclipse.jetty.websocket.core.CloseStatus;
import org.eclipse.jetty.websocket.core.CoreSession;
import org.eclipse.jetty.websocket.core.Frame;
import org.eclipse.jetty.websocket.core.FrameHandler;
import org.eclipse.jetty.websocket.core.OpCode;
import org.eclipse.jetty.websocket.core.WebSocketConnection;
import org.eclipse.jetty.websocket.core.WebSocketCoreSession;
import org.eclipse.jetty.websocket.core.exception.CloseException;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import dev.wsproxy.Backend;
import dev.wsproxy.ProxySession;
import dev.wsproxy.SessionClose;

/**
 * One proxied session: the client leg (a server-side Jetty core session) and the backend leg (a client-side one),
 * each a {@link FrameHandler}, relaying frames to the other.
 *
 * <h2>Demand</h2>
 * Both legs use explicit demand. A leg demands one frame, hands it to the other leg's {@code sendFrame}, and demands
 * the next only when that send has completed; the frame's buffer is released at the same moment. So each direction
 * has at most one frame in flight, and a reader that stops reading stops its writer through TCP. The backend leg opens
 * first but demands nothing until the client leg is upgraded, so a backend that speaks first loses nothing. Demands go
 * through {@link WebSocketEndPoints#demand}, so that a read they resume runs on the demanding thread.
 *
 * <h2>Close</h2>
 * A close frame from one peer is relayed to the other leg, and the frame's callback is held: Jetty would otherwise
 * answer the close itself. When the other peer's close reply arrives, it is relayed back as the answer and the held
 * callback completes, so the close handshake is end to end and both codes and reasons are the peers' own. Codes that
 * cannot be sent are mapped: a peer that vanished without a close frame (1006) becomes {@code 1014} towards the client
 * or {@code 1001} towards the backend; a close frame with no code is relayed as an empty close frame. The proxy itself
 * closes both legs for idle timeouts, limits, protocol errors, shutdown and the maximum lifetime. A leg that does not
 * answer a close within the close timeout is dropped; a peer waiting for its answer then gets the proxy's, as for a
 * lost peer, and whatever is still open one more close timeout later is dropped ({@link #onCloseTimeout}). All close
 * state is guarded by {@code this}; actions on sessions run after the lock is released, because Jetty may call back
 * into the relay from inside them.
 *
 * <h2>Input buffers</h2>
 * A held close frame keeps the network buffer it was read into until the other peer answers, and when many sessions
 * close at once (a client fleet leaving, a deploy) that is one buffer per session at the same moment. So each leg
 * reads with a 4 KiB buffer, and switches to 64 KiB (2 to 3 times cheaper per byte for large frames) on its first
 * data frame of 2 KiB or more. Measured: after a mass close of 9,000 sessions, a hold of 9,000 idle connections cost
 * 12.5 KiB per connection instead of 34.2, the pool and the allocator having kept what the pinned 64 KiB buffers took
 * ({@code docs/benchmarks.md}). Idle legs hold no buffer at all: Jetty releases it after a read that finds nothing.
 *
 * <h2>Limits</h2>
 * Each leg polices what its peer sends, on the thread handling its current frame and without allocation or locks: the
 * message size and UTF-8 of text; the fragments per message; and, on the client leg only, a message rate (GCRA: a
 * single timestamp). A compressed message (permessage-deflate passed through, {@link DeflatePassThrough}) is sized as
 * it is on the wire and its text is not checked: the proxy never inflates it. Fragments are counted as the peer sent
 * them, not as Jetty delivers them. With autoFragment on, Jetty's {@code Parser} delivers a data frame whose payload
 * has not fully arrived as pieces, and keeps the length of the rest until the frame ends: with the proxy's parser
 * ({@link Masking#install}) only a piece that does not continue a frame counts. With Jetty's own (where it cannot be
 * swapped), a guess: each piece is non-empty, takes everything left in the network buffer, and the next piece comes
 * only after another read. So a data frame that is empty, or that was parsed from the same read as the data frame
 * before it (the connection's {@code getBytesIn()} has not moved), is certainly the start of a frame the peer sent.
 * Those are counted, and so is any data frame under {@link #SMALL_FRAGMENT} bytes whatever the reads (over TLS each
 * record is a read of its own, so a peer could otherwise send one tiny frame per record uncounted); the tail of a frame
 * cut by a read may be one. The cap grows by one per KiB of the message, so frames of 1 KiB or more are never limited
 * (with Jetty's parser, nearly never: the occasional tail counted may take a message of tens of MiB over it). A
 * violation closes the offender with 1009 (fragments, size), 1008 (rate) or 1007 (UTF-8), and the other leg as {@link
 * #onViolation} says.
 *
 * <h2>Keep-alive pings</h2>
 * With a ping interval (see {@link dev.wsproxy.TimeoutPolicy}) shorter than the idle timeout, each leg's connection
 * times out after the ping interval instead of the idle timeout, and the leg's {@code KeepAlive} runs each time the
 * connection has read and written nothing for that long. It measures the idle timeout itself, from the relay's
 * counters (data bytes, messages, relayed pings and pongs of both legs), so that the proxy's own pings and pongs do not
 * keep a session alive; it sends the peer a ping; and the peer is dead when the previous ping still waits to be written
 * (the peer reads nothing), or when the connection has read nothing since that ping while it was waiting to read. A
 * leg the relay is not reading from (its frame waits for the other leg's send) is not waiting to read, so a peer held
 * back by a slow other peer is never judged by its silence. The pongs that answer the proxy's pings carry {@link
 * #PING_PAYLOAD} and are dropped, not relayed, one for each ping: any other pong is the peers' own, whatever it carries.
 * Only the leg's idle expiry touches the state, and Jetty runs those one at a time; with pings off a leg has none of
 * it (one null field), and nothing changes on the relay's paths.
 *
 * <h2>Write timeout</h2>
 * A peer that keeps sending while it reads nothing keeps its connection from ever being idle, so neither the idle
 * timeout nor a ping finds it. Its own frames find it: each frame the leg handles first looks at the connection's
 * write flusher, and only when a write to the peer is pending does it read the clock, remembering the bytes handed
 * out and since when; a write still pending, with nothing handed out since, {@link Timeouts#writeTimeoutNanos()} later
 * means the peer has taken no frame for that long ({@link #onWriteTimeout}). So the check costs one volatile read per
 * frame while writes complete, and a peer that sends nothing is left to the idle timeout and the pings. A client on
 * an HTTP/2 stream (RFC 8441) has no write flusher: its end point, a {@link StreamEndPoint}, says instead whether a
 * write waits, for the client's flow-control window; its frames keep the stream from being idle just the same.
 *
 * <h2>End</h2>
 * The relay ends once both legs have ended (or will never open); {@link #finish()} then runs exactly once: it
 * deregisters the relay and reports to the selector, the listeners and the access log.
 */
final class Relay implements ProxySession {

    private static final Logger LOG = LoggerFactory.getLogger(Relay.class);
    private static final int MAX_REASON_BYTES = Frame.MAX_CONTROL_PAYLOAD - 2;
    /** The most of a subprotocol a DEBUG line writes: the client's offer, as long as its header allows. */
    private static final int MAX_LOGGED_SUBPROTOCOL = 100;
    /** {@link #proxyClose} when the proxy sent the client no close code. */
    static final int NO_PROXY_CLOSE = 0;
    /** Data frames carrying less than this always count against the fragment cap. */
    static final int SMALL_FRAGMENT = 128;
    /** The payload of the proxy's own pings; a pong carrying it answers one of them and is not relayed. */
    private static final AtomicIntegerFieldUpdater<Leg.KeepAlive> PONGS_OWED =
            AtomicIntegerFieldUpdater.newUpdater(Leg.KeepAlive.class, "pongsOwed");
    private static final ByteBuffer PING_PAYLOAD =
            ByteBuffer.wrap("wsproxy".getBytes(StandardCharsets.US_ASCII)).asReadOnlyBuffer();

    enum Side {
        CLIENT, BACKEND
    }

    private final WebSocketProxyHandler owner;
    private final String id;
    private final Route route;
    private final Timeouts timeouts;
    /** Whether the proxy pings quiet legs (see "Keep-alive pings"): read once, not at each leg's open. */
    private final boolean pings;
    /** {@link Timeouts#writeTimeoutNanos()}; 0 for none. */
    private final long writeTimeoutNanos;
    private final InetSocketAddress clientAddress;
    private final Backend backend;
    private final URI backendUri;
    private final BackendState.Lease lease;
    private volatile ConnectionLimits.@Nullable Permit permit;
    private volatile Map<String, Object> attributes = Map.of();
    final Leg clientLeg = new Leg(Side.CLIENT);
    final Leg backendLeg = new Leg(Side.BACKEND);

    // Guarded by this.
    private boolean opened;
    private boolean finished;
    /** {@link #reportOpened} has returned: the close may be reported. */
    private boolean openReported;
    /** The session ended while its open was still being reported: reported when that returns. */
    private @Nullable SessionClose closeToReport;
    private SessionClose.@Nullable Initiator initiator;
    /**
     * When the proxy started the end ({@link #initiator} {@code PROXY}): the code it sent the client
     * ({@link #NO_PROXY_CLOSE} when it dropped the client's connection without one) and why, a token for the access
     * log ({@code idle_timeout}). Set with the initiator, once, on the close paths only; but a server that drops the
     * connections ({@link #serverStopping}) names no code, and the client is sent {@code 1001} after all when the
     * backend's connection went first ({@link #onLegClosed}).
     */
    private int proxyClose = NO_PROXY_CLOSE;
    private @Nullable String proxyCloseReason;
    private @Nullable CloseStatus pendingClientClose;
    private Scheduler.@Nullable Task closeTimer;
    /** The close timer has fired once: an answer owed to a peer had one more close timeout to be written. */
    private boolean closeTimedOut;
    private Scheduler.@Nullable Task lifetimeTimer;
    private @Nullable Runnable abortHandshake;
    /** {@link #close} was called before the client was upgraded: a backend handshake it cancels is not a failure. */
    private boolean closedBeforeUpgrade;
    /** {@link #drainBeforeUpgrade} gave up the backend handshake: the client fails over to another backend. */
    private boolean drainedBeforeUpgrade;
    /** The backend answered its handshake: the client's upgrade is under way ({@link #onBackendConnected}). */
    private boolean backendConnected;

    /** Whether the client came over HTTP/2 (RFC 8441), answered {@code 200} rather than {@code 101}. */
    private final boolean overHttp2;
    private volatile @Nullable String subprotocol;
    private volatile Instant openedAt = Instant.EPOCH;
    private volatile long openedNanos;

    Relay(WebSocketProxyHandler owner, String id, Route route, Timeouts timeouts, InetSocketAddress clientAddress,
            Backend backend, URI backendUri, BackendState.Lease lease, boolean overHttp2) {
        this.owner = owner;
        this.overHttp2 = overHttp2;
        this.id = id;
        this.route = route;
        this.timeouts = timeouts;
        this.pings = timeouts.pings();
        this.writeTimeoutNanos = timeouts.writeTimeoutNanos();
        this.clientAddress = clientAddress;
        this.backend = backend;
        this.backendUri = backendUri;
        this.lease = lease;
    }

    // ---- ProxySession ----

    @Override
    public String id() {
        return id;
    }

    @Override
    public String route() {
        return route.prefix();
    }

    @Override
    public InetSocketAddress clientAddress() {
        return clientAddress;
    }

    /** The state of the backend this session holds a lease on: the one its handshake counted in. */
    BackendState backendState() {
        return lease.state();
    }

    @Override
    public Backend backend() {
        return backend;
    }

    @Override
    public URI backendUri() {
        return backendUri;
    }

    @Override
    public @Nullable String subprotocol() {
        return subprotocol;
    }

    @Override
    public Instant openedAt() {
        return openedAt;
    }

    @Override
    public long clientToBackendBytes() {
        return clientLeg.bytes;
    }

    @Override
    public long clientToBackendMessages() {
        return clientLeg.messages;
    }

    @Override
    public long backendToClientBytes() {
        return backendLeg.bytes;
    }

    @Override
    public long backendToClientMessages() {
        return backendLeg.messages;
    }

    @Override
    public Map<String, Object> attributes() {
        return attributes;
    }

    @Override
    public void close(int code, String reason) {
        if (!CloseStatus.isTransmittableStatusCode(code)) {
            throw new IllegalArgumentException("code: " + code + " (expected: 1000-1003, 1007-1014 or 3000-4999)");
        }
        requireNonNull(reason, "reason");
        int reasonBytes = reason.getBytes(StandardCharsets.UTF_8).length;
        if (reasonBytes > MAX_REASON_BYTES) {
            // In bytes, as the limit is: a reason of 62 'é' is 124 bytes, not 62 chars of a 123 limit.
            throw new IllegalArgumentException(
                    "reason: " + reasonBytes + " UTF-8 bytes (expected: at most " + MAX_REASON_BYTES + ")");
        }
        close(new CloseStatus(code, reason), "closed_by_app");
    }

    /**
     * Closes both legs with {@code status} ({@link #close(int, String)}), {@code why} being the access log's reason
     * should this close start the session's end.
     */
    private void close(CloseStatus status, String why) {
        Runnable abort = null;
        synchronized (this) {
            if (!opened && !finished) {
                closedBeforeUpgrade = true;
                abort = abortHandshake;
            }
        }
        terminate(status, status, why);
        if (abort != null) {
            // A backend handshake in progress ends now (503 to the client, nobody blamed, no failover); one that
            // completed already goes on, and the client gets its 101 and then this close.
            abort.run();
        }
    }

    /**
     * The backend is drained ({@code proxy.drain(backend)}) and this session is one of its open ones: closed with
     * {@code 1001} as by {@link #close(int, String)}, the access log saying {@code backend_draining}.
     */
    void closeForDrain() {
        close(new CloseStatus(CloseStatus.SHUTDOWN, "backend draining"), "backend_draining");
    }

    /** Whether {@link #close} was called before the client was upgraded (see {@link Handshake}). */
    synchronized boolean closedBeforeUpgrade() {
        return closedBeforeUpgrade;
    }

    /**
     * The backend is being drained ({@code proxy.drain}) while this relay may still be in its backend handshake: gives
     * that handshake up, so that {@link Handshake} fails over to another backend, as it does for a handshake that
     * finds the backend draining, with nobody blamed. Returns {@code false}, and does nothing, once the backend has
     * answered ({@link #onBackendConnected}: the client's {@code 101} is on its way, and the client may hold it before
     * the relay hears of its upgrade) or the relay has finished: such a session is the drain's to close, over its
     * window, as an open one.
     *
     * <p>A backend handshake that completed just before, its answer not yet handed on, goes on as after
     * {@link #close}: the client gets its {@code 101} and then {@code 1001}, like the drained backend's other sessions.
     */
    boolean drainBeforeUpgrade() {
        Runnable abort;
        synchronized (this) {
            if (backendConnected || opened || finished) {
                return false;
            }
            drainedBeforeUpgrade = true;
            abort = abortHandshake;
        }
        CloseStatus goingAway = new CloseStatus(CloseStatus.SHUTDOWN, "backend draining");
        terminate(goingAway, goingAway, "backend_draining");
        if (abort != null) {
            abort.run();
        }
        return true;
    }

    /** Whether {@link #drainBeforeUpgrade} gave up the backend handshake (see {@link Handshake}). */
    synchronized boolean drainedBeforeUpgrade() {
        return drainedBeforeUpgrade;
    }

    @Override
    public String toString() {
        return "Relay[" + id + " " + clientAddress + " -> " + withoutQuery(backendUri) + "]";
    }

    /** The URI without its query, for logs: a query may carry a token ({@code access_token=...}). */
    static String withoutQuery(URI uri) {
        String text = uri.toString();
        int query = text.indexOf('?');
        return query < 0 ? text : text.substring(0, query) + "?...";
    }

    // ---- handshake phase, called by WebSocketProxyHandler ----

    /** Keeps what the route's authenticator attached to the request. */
    void attributes(Map<String, Object> attributes) {
        this.attributes = attributes;
    }

    /** Takes over the client's connection slot, to give it back when the relay finishes. */
    void holdPermit(ConnectionLimits.@Nullable Permit permit) {
        this.permit = permit;
    }

    /**
     * Remembers how to abort the pending backend handshake, for shutdown; aborts it at once after an early close or a
     * drain.
     */
    void onConnecting(Runnable abort) {
        boolean closed;
        synchronized (this) {
            this.abortHandshake = abort;
            closed = closedBeforeUpgrade || drainedBeforeUpgrade;
        }
        if (closed) {
            abort.run();
        }
    }

    /** The backend handshake failed: neither leg will ever open. */
    void onBackendFailed() {
        synchronized (this) {
            clientLeg.done = true;
            backendLeg.done = true;
        }
        finishIfDone();
    }

    /** The backend leg is open and the client's 101 is about to be written. */
    void onBackendConnected(@Nullable String subprotocol) {
        this.subprotocol = subprotocol;
        synchronized (this) {
            backendConnected = true;
        }
    }

    /** The client leg will never open (the 101 could not be written, or the proxy answered with an error instead). */
    void onClientUpgradeFailed(String why) {
        CoreSession backendSession;
        synchronized (this) {
            clientLeg.done = true;
            backendSession = backendLeg.session;
            if (backendLeg.done || backendSession == null || backendLeg.closeSent) {
                backendSession = null;
            } else {
                backendLeg.closeSent = true;
                backendLeg.sentStatus = new CloseStatus(CloseStatus.SHUTDOWN, why);
            }
        }
        if (LOG.isDebugEnabled()) {
            LOG.debug("[{}] Client upgrade failed: {}", id, why);
        }
        if (backendSession != null) {
            backendLeg.sendClose(backendSession, new CloseStatus(CloseStatus.SHUTDOWN, why));
            armCloseTimer();
        }
        finishIfDone();
    }

    /** The proxy is shutting down: close both legs with 1001, or abort the handshake in progress. */
    void shutdown() {
        Runnable abort;
        synchronized (this) {
            abort = opened ? null : abortHandshake;
        }
        if (abort != null) {
            abort.run();
        }
        CloseStatus goingAway = new CloseStatus(CloseStatus.SHUTDOWN, "proxy shutting down");
        terminate(goingAway, goingAway, "shutdown");
    }

    /**
     * Drops both connections at once, without close frames: the drain deadline has passed, a close timed out, or the
     * handler stops with sessions still open (a mounted proxy's server stopped without {@code proxy.stop()}), the one
     * case where nothing named the end before.
     */
    void abort() {
        CoreSession client;
        CoreSession backendSession;
        Runnable abort;
        synchronized (this) {
            droppedAtShutdown();
            client = clientLeg.done ? null : clientLeg.session;
            backendSession = backendLeg.done ? null : backendLeg.session;
            abort = opened ? null : abortHandshake;
        }
        if (abort != null) {
            abort.run();
        }
        if (client != null) {
            WebSocketEndPoints.abort(client);
        }
        if (backendSession != null) {
            WebSocketEndPoints.abort(backendSession);
        }
    }

    /**
     * The server stops and will drop this session's connections without close frames (a mounted proxy's server stopped
     * without a graceful stop): the session is named as the proxy's end, {@code shutdown}, unless a peer or the proxy
     * began to end it already.
     */
    void serverStopping() {
        synchronized (this) {
            droppedAtShutdown();
        }
    }

    /** Names a drop of the connections as the proxy's end ({@code shutdown}), when nothing named the end before. */
    private void droppedAtShutdown() {
        if (initiator == null) {
            initiator = SessionClose.Initiator.PROXY;
            proxyClose = NO_PROXY_CLOSE;
            proxyCloseReason = "shutdown";
        }
    }

    // ---- relay logic ----

    /**
     * The client has its {@code 101} and its leg is open: the session opens. The leg's session is published here, in
     * the same locked step that marks the relay opened, so that a close from another thread (a stop, a drain,
     * {@link #close(int, String)}) either comes before, finds no client session and leaves its close pending
     * ({@link #pendingClientClose}, sent below), or comes after, on an opened session. It cannot end both legs in
     * between, which left a client that got its {@code 101} with no session reported and no access line.
     */
    private void onClientOpened(CoreSession client) {
        List<Runnable> actions = new ArrayList<>();
        boolean givenUp;
        synchronized (this) {
            givenUp = clientLeg.done;
            if (givenUp) {
                // The handshake gave the client up before its leg opened (onClientUpgradeFailed: its refusal has the
                // request's access line), and closed the backend leg: nobody will relay this connection.
                actions.add(() -> WebSocketEndPoints.abort(client));
            } else {
                opened = true;
                clientLeg.session = client;
                openedAt = Instant.now();
                openedNanos = NanoTime.now();
                // The client has its 101: an opened session, whatever happens next, so that every close reported in
                // finish() follows an open reported here.
                lease.state().opened();
                actions.add(this::reportOpened);
                if (backendLeg.done || pendingClientClose != null) {
                    // The backend leg ended (or the proxy closed the session) before the client leg was upgraded.
                    CloseStatus status = pendingClientClose != null ? pendingClientClose : lost(Side.BACKEND);
                    if (initiator == null) {
                        initiator = pendingClientClose != null ? SessionClose.Initiator.PROXY
                                : SessionClose.Initiator.BACKEND;
                    }
                    clientLeg.closeSent = true;
                    clientLeg.sentStatus = status;
                    actions.add(() -> clientLeg.sendClose(client, status));
                    actions.add(() -> WebSocketEndPoints.demand(client));
                    CoreSession backendSession = backendLeg.session;
                    if (!backendLeg.done && backendSession != null) {
                        // The proxy's close went to the backend too: its answer must be read.
                        actions.add(() -> WebSocketEndPoints.demand(backendSession));
                    }
                    actions.add(this::armCloseTimer);
                } else {
                    CoreSession backendSession = backendLeg.session;
                    actions.add(() -> WebSocketEndPoints.demand(client));
                    actions.add(() -> WebSocketEndPoints.demand(backendSession));
                    // Drawn per session (see Timeouts): sessions opened together are not closed together.
                    long lifetimeMillis = timeouts.sessionLifetimeMillis(ThreadLocalRandom.current());
                    if (lifetimeMillis != 0) {
                        lifetimeTimer = owner.scheduler().schedule(this::onLifetimeExceeded, lifetimeMillis,
                                TimeUnit.MILLISECONDS);
                    }
                }
            }
        }
        if (!givenUp && LOG.isDebugEnabled()) {
            // The subprotocol is one the client offered, which Jetty reads as ISO-8859-1 (U+0085 NEL, U+009B CSI).
            LOG.debug("[{}] Open: {} -> {} subprotocol={}", id, AccessLog.client(clientAddress),
                    withoutQuery(backendUri), LogText.printable(subprotocol, MAX_LOGGED_SUBPROTOCOL));
        }
        actions.forEach(Runnable::run);
    }

    /**
     * Reports the open to the selector and the listeners; a close that came while they ran (a listener closing the
     * session with an error code ends both legs on this very thread) is reported after them, never before.
     */
    private void reportOpened() {
        SessionClose close;
        try {
            Object outer = UserCode.enter(route.selector());
            try {
                route.selector().onSessionOpened(backend);
            } catch (Throwable e) {
                LOG.warn("[{}] Backend selector {} failed in onSessionOpened", id, route.selector(), e);
            } finally {
                UserCode.exit(outer);
            }
            route.listener().onSessionOpened(this);
        } finally {
            synchronized (this) {
                openReported = true;
                close = closeToReport;
                closeToReport = null;
            }
        }
        if (close != null) {
            reportClosed(close);
        }
    }

    private void onLifetimeExceeded() {
        CloseStatus status = new CloseStatus(CloseStatus.SHUTDOWN, "session lifetime exceeded");
        terminate(status, status, "max_lifetime");
    }

    /** What the relay has carried so far, both ways: it moves whenever a frame or a piece of one is relayed. */
    private long traffic() {
        return clientLeg.bytes + clientLeg.messages + clientLeg.controls()
                + backendLeg.bytes + backendLeg.messages + backendLeg.controls();
    }

    /** A peer did not answer the proxy's ping: its connection is dropped, the other peer told (see TimeoutPolicy). */
    private boolean onUnresponsive(Leg dead) {
        return dead.side == Side.BACKEND
                ? drop(dead, new CloseStatus(CloseStatus.BAD_GATEWAY, "backend not responding"), "backend_unresponsive")
                : drop(dead, new CloseStatus(CloseStatus.SHUTDOWN, "client not responding"), "client_unresponsive");
    }

    /**
     * Drops the connection of {@code dead}, whose peer would read no close frame, and closes the other leg with
     * {@code notice}; nothing when a close is under way (the close timeout sees to it). Returns whether it dropped.
     */
    private boolean drop(Leg dead, CloseStatus notice, String why) {
        CoreSession deadSession;
        List<Runnable> actions = new ArrayList<>();
        synchronized (this) {
            deadSession = dead.session;
            if (finished || dead.done || dead.closeSent || dead.heldClose != null || deadSession == null) {
                return false; // a close is under way: the close timeout sees to it
            }
            if (initiator == null) {
                initiator = SessionClose.Initiator.PROXY;
                proxyClose = dead.side == Side.CLIENT ? NO_PROXY_CLOSE : notice.getCode();
                proxyCloseReason = why;
            }
            dead.closeSent = true;
            closeLeg(dead.other(), notice, actions);
        }
        if (LOG.isDebugEnabled()) {
            // A write timeout without pings is a peer that reads nothing, not one that does not answer.
            LOG.debug("[{}] The {} {}: dropping its connection", id, dead.side,
                    "write_timeout".equals(why) ? "reads nothing" : "is not responding");
        }
        actions.forEach(Runnable::run);
        WebSocketEndPoints.abort(deadSession);
        armCloseTimer();
        return true;
    }

    /**
     * A write to {@code stalled} has been pending for {@link Timeouts#writeTimeoutNanos()} while its peer kept
     * sending: the peer reads nothing. With pings that is a dead peer; without, an idle timeout of the leg's sending
     * side, as nginx's {@code proxy_send_timeout}. Either way its connection is dropped: it would not read a close
     * frame. Returns whether it was; not when a close is under way.
     */
    private boolean onWriteTimeout(Leg stalled) {
        if (LOG.isDebugEnabled()) {
            LOG.debug("[{}] A write to the {} has been pending for {}", id, stalled.side,
                    Duration.ofNanos(writeTimeoutNanos));
        }
        return pings
                ? onUnresponsive(stalled)
                : drop(stalled, new CloseStatus(CloseStatus.SHUTDOWN, "idle timeout"), "write_timeout");
    }

    private void onIdle(Side side) {
        if (LOG.isDebugEnabled()) {
            LOG.debug("[{}] Idle timeout on the {} leg", id, side);
        }
        CloseStatus status = new CloseStatus(CloseStatus.SHUTDOWN, "idle timeout");
        terminate(status, status, "idle_timeout");
    }

    /** A peer broke a rule the proxy enforces (message size, UTF-8): it gets {@code code}, the other leg a mapping. */
    private void onViolation(Side offender, int code, String reason, String why) {
        if (LOG.isDebugEnabled()) {
            LOG.debug("[{}] The {} broke the protocol: {} {}", id, offender, code, reason);
        }
        CloseStatus toOffender = new CloseStatus(code, reason);
        CloseStatus toOther;
        if (offender == Side.CLIENT || code == CloseStatus.MESSAGE_TOO_LARGE) {
            toOther = new CloseStatus(CloseStatus.SHUTDOWN, offender.name().toLowerCase(Locale.ROOT) + ": " + reason);
        } else {
            toOther = new CloseStatus(CloseStatus.BAD_GATEWAY, "backend: " + reason);
        }
        Leg leg = offender == Side.CLIENT ? clientLeg : backendLeg;
        boolean owesClose;
        synchronized (this) {
            owesClose = leg.closeSent && !leg.done;
        }
        if (offender == Side.CLIENT) {
            terminate(toOffender, toOther, why);
        } else {
            terminate(toOther, toOffender, why);
        }
        CoreSession session = leg.session;
        if (owesClose && session != null) {
            // The offender was sent a close before it broke the rule, so it gets no other: read on for its answer
            // (what it sends meanwhile is dropped, the other leg being closed too), or the close timer ends it.
            WebSocketEndPoints.demand(session);
        }
    }

    /**
     * The proxy closes both legs; legs already closing are answered or left to finish. {@code why} is the access log's
     * reason for the end, kept when this close starts it.
     */
    private void terminate(CloseStatus toClient, CloseStatus toBackend, String why) {
        List<Runnable> actions = new ArrayList<>();
        synchronized (this) {
            if (finished) {
                return;
            }
            if (initiator == null) {
                initiator = SessionClose.Initiator.PROXY;
                proxyClose = toClient.getCode();
                proxyCloseReason = why;
            }
            if (clientLeg.session == null && !clientLeg.done) {
                pendingClientClose = toClient;
            }
            closeLeg(clientLeg, toClient, actions);
            closeLeg(backendLeg, toBackend, actions);
        }
        actions.forEach(Runnable::run);
        armCloseTimer();
    }

    /** Under the lock: sends {@code status} on a leg that has not been sent a close yet, or answers a held close. */
    private void closeLeg(Leg leg, CloseStatus status, List<Runnable> actions) {
        CoreSession session = leg.session;
        if (leg.done || session == null) {
            return;
        }
        Callback held = leg.heldClose;
        if (held != null) {
            leg.heldClose = null;
            leg.closeSent = true;
            leg.sentStatus = status;
            actions.add(() -> {
                leg.sendClose(session, status);
                held.succeeded();
            });
        } else if (!leg.closeSent) {
            leg.closeSent = true;
            leg.sentStatus = status;
            actions.add(() -> leg.sendClose(session, status));
        }
    }

    private void onCloseFrame(Leg from, Frame frame, Callback callback) {
        CloseStatus status = frame instanceof Frame.Parsed parsed && parsed.getCloseStatus() != null
                ? parsed.getCloseStatus() : CloseStatus.getCloseStatus(frame);
        Leg to = from.other();
        Runnable action;
        boolean arm = false;
        synchronized (this) {
            from.peerCode = status.getCode();
            from.peerReason = status.getReason() == null ? "" : status.getReason();
            if (initiator == null) {
                initiator = from.initiator();
            }
            Callback held = to.heldClose;
            CoreSession target = to.session;
            if (held != null && target != null) {
                // The answer to a close we relayed from the other peer: relay it back as that close's reply.
                to.heldClose = null;
                CloseStatus reply = relayable(status, from.side);
                to.closeSent = true;
                to.sentStatus = reply;
                action = () -> {
                    to.sendClose(target, reply);
                    held.succeeded();
                    callback.succeeded();
                };
            } else if (from.closeSent || to.done || target == null || to.closeSent) {
                // The reply to a close the proxy sent, or no one left to tell: let Jetty finish this leg.
                action = callback::succeeded;
            } else {
                // A peer starts the close: relay it, and answer only when the other peer has answered.
                from.heldClose = callback;
                CloseStatus relayed = relayable(status, from.side);
                to.closeSent = true;
                to.sentStatus = relayed;
                action = () -> to.sendClose(target, relayed);
                arm = true;
            }
        }
        if (LOG.isDebugEnabled()) {
            LOG.debug("[{}] Close frame from the {}: {}", id, from.side, describe(status));
        }
        action.run();
        if (arm) {
            armCloseTimer();
        }
    }

    private void onLegClosed(Leg leg, CloseStatus status) {
        Leg other = leg.other();
        List<Runnable> actions = new ArrayList<>();
        boolean arm = false;
        synchronized (this) {
            leg.done = true;
            if (initiator == null) {
                String fault = peerFault(status);
                if (fault == null) {
                    initiator = leg.initiator();
                } else {
                    // Jetty failed the leg for a frame its peer sent, with a close frame to the offender: the proxy
                    // ended the session, as for a rule of its own. The client got the code, or for a backend at fault
                    // what it is told next (below, or at its open): its connection lost.
                    initiator = SessionClose.Initiator.PROXY;
                    proxyClose = leg.side == Side.CLIENT ? status.getCode() : CloseStatus.BAD_GATEWAY;
                    proxyCloseReason = fault;
                }
            }
            Callback ownHeld = leg.heldClose;
            if (ownHeld != null) {
                // Jetty has closed this connection already; completing the held frame only releases it.
                leg.heldClose = null;
                actions.add(ownHeld::succeeded);
            }
            CoreSession target = other.session;
            Callback held = other.heldClose;
            if (held != null && target != null) {
                // The other peer waits for this leg's answer to its close, and this leg ended without one.
                other.heldClose = null;
                CloseStatus sent = leg.sentStatus;
                CloseStatus reply = leg.closeSent && sent != null && sent.getCode() == status.getCode()
                        ? sent : lost(leg.side);
                other.closeSent = true;
                other.sentStatus = reply;
                actions.add(() -> {
                    other.sendClose(target, reply);
                    held.succeeded();
                });
            } else if (!other.done && !other.closeSent && target != null) {
                // This leg ended without a close handshake relayed through the proxy: tell the other peer. While the
                // server drops every connection (serverStopping), that is the proxy going away, not a lost peer: the
                // other leg, if Jetty has not dropped it yet, gets what a graceful stop sends.
                boolean stopping = initiator == SessionClose.Initiator.PROXY && "shutdown".equals(proxyCloseReason);
                CloseStatus notice = stopping ? new CloseStatus(CloseStatus.SHUTDOWN, "proxy shutting down")
                        : lost(leg.side);
                if (stopping && other.side == Side.CLIENT) {
                    // The client is sent a close after all: the access line's proxy_close names it.
                    proxyClose = CloseStatus.SHUTDOWN;
                }
                other.closeSent = true;
                other.sentStatus = notice;
                actions.add(() -> other.sendClose(target, notice));
                arm = true;
            }
        }
        if (LOG.isDebugEnabled()) {
            LOG.debug("[{}] The {} leg ended: {}", id, leg.side, describe(status));
        }
        actions.forEach(Runnable::run);
        if (arm) {
            armCloseTimer();
        }
        finishIfDone();
    }

    /**
     * The access log's reason when Jetty ended a leg for what its peer sent ({@code status} carries the
     * {@link CloseException} its parser or its frame checks threw, and the peer got its code): {@code protocol_error}
     * (1002: a mask, reserved bits, an opcode, a control frame, a continuation out of sequence, a close code),
     * {@code message_too_big} (1009: a frame length over 2^31 - 1) or {@code invalid_utf8} (1007: a close reason);
     * {@code null} for any other end, a lost connection included. The relay's own checks close without a cause.
     */
    private static @Nullable String peerFault(CloseStatus status) {
        if (!(status.getCause() instanceof CloseException)) {
            return null;
        }
        return switch (status.getCode()) {
            case CloseStatus.PROTOCOL -> "protocol_error";
            case CloseStatus.MESSAGE_TOO_LARGE -> "message_too_big";
            case CloseStatus.BAD_PAYLOAD -> "invalid_utf8";
            default -> null;
        };
    }

    private void armCloseTimer() {
        Duration timeout = timeouts.closeTimeout();
        synchronized (this) {
            if (finished || closeTimer != null) {
                return;
            }
            closeTimer = owner.scheduler().schedule(this::onCloseTimeout, timeout.toMillis(), TimeUnit.MILLISECONDS);
        }
    }

    /**
     * The close handshake has not ended within the close timeout. When a peer started it and waits for the proxy's
     * answer (a held close), only the other leg is dropped, the one whose peer never answered the close relayed to it:
     * its end answers the held close as for a lost peer ({@link #onLegClosed}: 1014 to the client, 1001 to the
     * backend), so that a peer which did its part gets its close handshake completed instead of a dropped connection
     * (RFC 6455 section 5.5.1), and the timer runs once more, for that answer to be written. Otherwise, or the second
     * time, both connections are dropped.
     */
    private void onCloseTimeout() {
        Leg silent = null;
        CoreSession silentSession = null;
        synchronized (this) {
            if (finished) {
                return;
            }
            if (!closeTimedOut) {
                closeTimedOut = true;
                Leg waiting = clientLeg.heldClose != null ? clientLeg
                        : backendLeg.heldClose != null ? backendLeg : null;
                if (waiting != null && !waiting.done && !waiting.other().done) {
                    silent = waiting.other();
                    silentSession = silent.session;
                }
                if (silentSession != null) {
                    closeTimer = owner.scheduler().schedule(this::onCloseTimeout,
                            timeouts.closeTimeout().toMillis(), TimeUnit.MILLISECONDS);
                }
            }
        }
        if (silent != null && silentSession != null) {
            if (LOG.isDebugEnabled()) {
                LOG.debug("[{}] The {} did not answer the close: dropping its connection", id, silent.side);
            }
            WebSocketEndPoints.abort(silentSession);
            return;
        }
        if (LOG.isDebugEnabled()) {
            LOG.debug("[{}] Close handshake timed out: dropping the connections", id);
        }
        abort();
    }

    private void finishIfDone() {
        synchronized (this) {
            if (finished || !clientLeg.done || !backendLeg.done) {
                return;
            }
            finished = true;
            if (closeTimer != null) {
                closeTimer.cancel();
            }
            if (lifetimeTimer != null) {
                lifetimeTimer.cancel();
            }
        }
        finish();
    }

    /** Runs exactly once, when both legs have ended. */
    private void finish() {
        lease.release();
        ConnectionLimits.Permit held = permit;
        if (held != null) {
            held.release();
        }
        boolean toReport;
        synchronized (this) {
            // Set before finished is, if ever (onClientOpened): it cannot change any more.
            toReport = opened;
        }
        owner.onRelayFinished(this, toReport);
        if (!toReport) {
            return;
        }
        SessionClose close;
        synchronized (this) {
            SessionClose.Initiator who = initiator == null ? SessionClose.Initiator.PROXY : initiator;
            close = new SessionClose(who, clientLeg.peerCode, clientLeg.peerReason, backendLeg.peerCode,
                    backendLeg.peerReason, Duration.ofNanos(NanoTime.since(openedNanos)));
            if (!openReported) {
                closeToReport = close;
                return;
            }
        }
        reportClosed(close);
    }

    /** Reports the close; a stopping proxy waits for it ({@link WebSocketProxyHandler#stopProxy}). */
    private void reportClosed(SessionClose close) {
        try {
            Object outer = UserCode.enter(route.selector());
            try {
                route.selector().onSessionClosed(backend);
            } catch (Throwable e) {
                LOG.warn("[{}] Backend selector {} failed in onSessionClosed", id, route.selector(), e);
            } finally {
                UserCode.exit(outer);
            }
            route.listener().onSessionClosed(this, close);
            AccessLog.session(this, close);
        } finally {
            owner.onCloseReported();
        }
    }

    /**
     * A close status for a DEBUG line: its code and its reason, which a peer wrote (any UTF-8, {@code \n} and ESC
     * included), escaped and cut as {@link LogText#printable} does.
     */
    private static String describe(CloseStatus status) {
        String reason = status.getReason();
        return reason == null ? String.valueOf(status.getCode())
                : status.getCode() + " " + LogText.printable(reason, MAX_REASON_BYTES);
    }

    /** The status the client's upgrade was answered with: {@code 101}, or {@code 200} over HTTP/2 (RFC 8441). */
    int upgradeStatus() {
        return overHttp2 ? 200 : 101;
    }

    /** The code the proxy sent the client when it started the session's end, or {@link #NO_PROXY_CLOSE}. */
    synchronized int proxyClose() {
        return proxyClose;
    }

    /** Why the proxy started the session's end, a token for the access log; {@code null} when it did not. */
    synchronized @Nullable String proxyCloseReason() {
        return proxyCloseReason;
    }

    /** Returns a status that can be sent on the other leg for one received from {@code from}'s peer. */
    private static CloseStatus relayable(CloseStatus status, Side from) {
        int code = status.getCode();
        if (code == CloseStatus.NO_CODE) {
            return CloseStatus.NO_CODE_STATUS;
        }
        if (CloseStatus.isTransmittableStatusCode(code)) {
            return new CloseStatus(code, status.getReason());
        }
        return lost(from);
    }

    /** What the other leg is told when {@code side}'s peer is gone without a close handshake. */
    private static CloseStatus lost(Side side) {
        return side == Side.BACKEND
                ? new CloseStatus(CloseStatus.BAD_GATEWAY, "backend connection lost")
                : new CloseStatus(CloseStatus.SHUTDOWN, "client connection lost");
    }

    /**
     * One leg of the relay. The frame counters are written by one thread at a time (the leg demands one frame at a
     * time) and read from any thread.
     */
    final class Leg implements FrameHandler {

        final Side side;
        /** The backend leg's session from its open; the client leg's from the session's ({@link #onClientOpened}). */
        volatile @Nullable CoreSession session;

        // Guarded by Relay.this.
        boolean done;
        boolean closeSent;
        @Nullable CloseStatus sentStatus;
        @Nullable Callback heldClose;
        int peerCode = CloseStatus.NO_CLOSE;
        String peerReason = "";

        // Written by the thread handling this leg's current frame: what was relayed to the other leg, payload bytes
        // and complete data messages (a frame the other leg's close made forward() drop is taken back off).
        volatile long bytes;
        volatile long messages;
        private long messageSize;
        private long messageFragments;
        private boolean textMessage;
        private final Utf8Validator utf8 = new Utf8Validator();
        private @Nullable WebSocketConnection connection;
        /**
         * The connection's parser when it is the proxy's ({@link Masking#install}), which tells a piece of a frame the
         * peer sent from a frame, and whether the last data frame handled was such a piece, its frame going on.
         */
        private @Nullable Object parser;
        private boolean inFrame;
        /** Without that parser: the connection's bytes read when the last data frame arrived. */
        private long lastBytesIn = -1;
        /** Whether this leg reads with the large input buffer; only the thread handling its frames touches it. */
        private boolean largeInput;
        /** The keep-alive pings' state when the proxy pings (see the class comment), set before the leg opens. */
        private @Nullable KeepAlive keepAlive;
        /**
         * The write flusher of this leg's end point, when the relay can see it (see "Write timeout" in the class
         * comment), or, on a client's HTTP/2 stream, the stream's end point, which has none but tells the same; and,
         * while a write to the peer is pending, the connection's bytes handed out when it was first seen pending (-1:
         * none is) and the nanoTime since then. Only the thread handling this leg's frames.
         */
        private @Nullable WriteFlusher writes;
        private @Nullable StreamEndPoint stream;
        private long pendingBytesOut = -1;
        private long pendingSince;
        /** Message rate limit, client leg only: GCRA, the nanoTime at which the bucket is full again. */
        private long rateInterval;
        private long rateBurst;
        private long rateFullAt;

        Leg(Side side) {
            this.side = side;
        }

        /**
         * The keep-alive pings of a leg (see the class comment), and the callback of its pings. Only the leg's idle
         * expiry touches the state, one at a time, except {@link #unsent}.
         */
        private final class KeepAlive implements Callback {
            /** Pings and pongs relayed from this leg's peer; written by the thread handling its current frame. */
            volatile long controls;
            /**
             * Pings sent whose pongs have not come: counted up by the idle expiry, down by the pongs ({@link
             * #PONGS_OWED}). A count, not a flag: a leg the relay is not reading from is pinged again while its
             * peer's first answer waits unread, and both answers then arrive together.
             */
            volatile int pongsOwed;
            /** {@link #traffic()} at the last expiry, and the nanoTime since which it has not moved. */
            private long trafficSeen = -1;
            private long quietSince;
            /** The connection's bytes read when the last ping was sent. */
            private long pingBytesIn = -1;
            /** Whether the last ping waits to be written: set by the idle expiry, cleared when the write completes. */
            private volatile boolean unsent;

            /** The leg's connection has read and written nothing for a ping interval. */
            void onQuiet() {
                long now = NanoTime.now();
                long traffic = traffic();
                if (traffic != trafficSeen) {
                    trafficSeen = traffic;
                    quietSince = now - timeouts.pingInterval().toNanos();
                }
                long idle = timeouts.idleTimeout().toNanos();
                if (idle != 0 && now - quietSince >= idle) {
                    onIdle(side);
                    return;
                }
                CoreSession self = session;
                WebSocketConnection conn = connection;
                if (self == null || conn == null || !self.isOutputOpen() || !self.isInputOpen()) {
                    return; // closing: the close timeout sees to it
                }
                long bytesIn = conn.getBytesIn();
                if (unsent || (bytesIn == pingBytesIn && conn.getEndPoint().isFillInterested())) {
                    // The peer read nothing for an interval (the ping still waits to be written), or sent nothing for
                    // one while the relay was waiting to read from it.
                    onUnresponsive(Leg.this);
                    return;
                }
                pingBytesIn = bytesIn;
                unsent = true;
                PONGS_OWED.incrementAndGet(this);
                self.sendFrame(new Frame(OpCode.PING).setPayload(PING_PAYLOAD.slice()), this, false);
            }

            /** Whether {@code frame} answers one of the proxy's pings, and if so counts it as answered. */
            boolean takesPong(Frame frame) {
                if (frame.getOpCode() != OpCode.PONG || !PING_PAYLOAD.equals(frame.getPayload())) {
                    return false;
                }
                int owed;
                do {
                    owed = pongsOwed;
                    if (owed == 0) {
                        return false;
                    }
                } while (!PONGS_OWED.compareAndSet(this, owed, owed - 1));
                return true;
            }

            @Override
            public void succeeded() {
                unsent = false;
            }

            @Override
            public void failed(Throwable failure) {
                unsent = false; // the connection is failing: its end tells the relay
            }

            @Override
            public InvocationType getInvocationType() {
                return InvocationType.NON_BLOCKING;
            }
        }

        Leg other() {
            return side == Side.CLIENT ? backendLeg : clientLeg;
        }

        SessionClose.Initiator initiator() {
            return side == Side.CLIENT ? SessionClose.Initiator.CLIENT : SessionClose.Initiator.BACKEND;
        }

        @Override
        public void onOpen(CoreSession coreSession, Callback callback) {
            if (coreSession instanceof WebSocketCoreSession core) {
                // Before the first frame is parsed or masked on this leg, and before the session is published to
                // threads that could send on it (see Masking).
                connection = core.getConnection();
                parser = Masking.install(connection, core, core.getBehavior());
                if (writeTimeoutNanos != 0) {
                    EndPoint endPoint = connection.getEndPoint();
                    if (endPoint instanceof StreamEndPoint h2) {
                        stream = h2;
                    } else {
                        writes = writeFlusher(endPoint);
                    }
                }
            }
            if (side == Side.BACKEND) {
                session = coreSession;
            }
            int rate = route.messageRateLimit();
            if (side == Side.CLIENT && rate > 0) {
                rateInterval = 1_000_000_000L / rate;
                rateBurst = (rate - 1) * rateInterval;
                rateFullAt = System.nanoTime();
            }
            keepAlive = pings ? new KeepAlive() : null;
            coreSession.addIdleTimeoutListener(timeout -> {
                onConnectionIdle();
                return false;
            });
            callback.succeeded();
            if (side == Side.CLIENT) {
                // Published there, under the relay's lock, as the session opens (see onClientOpened).
                onClientOpened(coreSession);
            }
        }

        @Override
        public void onFrame(Frame frame, Callback callback) {
            WriteFlusher flusher = writes;
            if (flusher != null ? flusher.isPending() : streamWritePending()) {
                // A close frame is relayed whatever the writes: the close handshake has a timeout of its own.
                if (frame.getOpCode() != OpCode.CLOSE && writeStalled() && onWriteTimeout(this)) {
                    callback.succeeded();
                    return;
                }
            } else if (pendingBytesOut != -1) {
                pendingBytesOut = -1;
            }
            switch (frame.getOpCode()) {
                case OpCode.CLOSE -> onCloseFrame(this, frame, callback);
                case OpCode.PING, OpCode.PONG -> {
                    KeepAlive pinger = keepAlive;
                    if (pinger != null && pinger.takesPong(frame)) {
                        // The answer to the proxy's own ping, not the other peer's.
                        callback.succeeded();
                        WebSocketEndPoints.demand(session);
                    } else if (rateInterval != 0 && overRate()) {
                        callback.succeeded();
                        onViolation(side, CloseStatus.POLICY_VIOLATION, "message rate exceeded", "rate_limited");
                    } else {
                        if (pinger != null) {
                            pinger.controls++;
                        }
                        forward(frame, callback);
                    }
                }
                default -> onDataFrame(frame, callback);
            }
        }

        /**
         * Sends this leg's peer a close frame. After an error close (any code but 1000, 1005 and 3000-4999) Jetty
         * takes no more frames from the peer while its close frame may still wait to be written: the proxy's parser
         * then drops them and reads on, so that a peer blocked writing reads its close frame (see {@link Masking}).
         */
        void sendClose(CoreSession target, CloseStatus status) {
            WebSocketConnection conn = connection;
            if (conn != null && status.isAbnormal()) {
                Masking.dropFrames(conn);
            }
            target.close(status, Callback.NOOP);
        }

        /**
         * The write flusher that holds this leg's pending writes: the end point's own, or that of the first end point
         * it wraps that has one (a PROXY-protocol end point writes straight to the one it wraps); {@code null} when
         * none has, and then the write timeout is off for this leg.
         */
        private static @Nullable WriteFlusher writeFlusher(EndPoint endPoint) {
            EndPoint current = endPoint;
            for (int depth = 0; depth < 8 && current != null; depth++) {
                if (current instanceof AbstractEndPoint withFlusher) {
                    return withFlusher.getWriteFlusher();
                }
                current = current instanceof EndPoint.Wrapper wrapper ? wrapper.unwrap() : null;
            }
            if (LOG.isDebugEnabled()) {
                LOG.debug("No write flusher behind {}: no write timeout", endPoint);
            }
            return null;
        }

        /** Whether a write waits on this leg's HTTP/2 stream; {@code false} on a socket. */
        private boolean streamWritePending() {
            StreamEndPoint h2 = stream;
            return h2 != null && h2.isWritePending();
        }

        /**
         * A write to this leg's peer is pending: whether it is the same write (no bytes handed out since) that was
         * pending {@link Timeouts#writeTimeoutNanos()} ago.
         */
        private boolean writeStalled() {
            long out = connection.getBytesOut();
            long now = NanoTime.now();
            if (out != pendingBytesOut) {
                pendingBytesOut = out;
                pendingSince = now;
                return false;
            }
            return now - pendingSince >= writeTimeoutNanos;
        }

        /** Pings and pongs relayed from this leg's peer, counted only when the proxy pings. */
        long controls() {
            KeepAlive pinger = keepAlive;
            return pinger == null ? 0 : pinger.controls;
        }

        /**
         * This leg's connection read and wrote nothing for its idle timeout: the ping interval when the proxy pings.
         * Runs on the scheduler; a failure here would stop the connection's idle checks for good, so it is logged.
         */
        private void onConnectionIdle() {
            try {
                KeepAlive pinger = keepAlive;
                if (pinger == null) {
                    onIdle(side);
                } else {
                    pinger.onQuiet();
                }
            } catch (RuntimeException e) {
                LOG.warn("[{}] Idle check of the {} leg failed", id, side, e);
            }
        }

        /**
         * Takes one token from the message rate bucket (GCRA: one timestamp, no allocation); {@code true} when the
         * bucket is empty. Only called by the thread handling this leg's current frame.
         */
        private boolean overRate() {
            long now = System.nanoTime();
            long fullAt = rateFullAt - now < 0 ? now : rateFullAt;
            if (fullAt - now > rateBurst) {
                return true;
            }
            rateFullAt = fullAt + rateInterval;
            return false;
        }

        private void onDataFrame(Frame frame, Callback callback) {
            byte opCode = frame.getOpCode();
            if (opCode == OpCode.CONTINUATION) {
                if (frame.isRsv1()) {
                    // Only a message's first frame says it is compressed (RFC 7692 section 6.1); Jetty lets RSV1
                    // through on any data frame once the peers agreed on permessage-deflate (DeflatePassThrough).
                    callback.succeeded();
                    onViolation(side, CloseStatus.PROTOCOL, "RSV1 on a continuation frame", "protocol_error");
                    return;
                }
            } else {
                if (rateInterval != 0 && overRate()) {
                    callback.succeeded();
                    onViolation(side, CloseStatus.POLICY_VIOLATION, "message rate exceeded", "rate_limited");
                    return;
                }
                messageSize = 0;
                messageFragments = 0;
                // A compressed text message (RSV1, only ever set when the peers agreed on permessage-deflate) is
                // relayed unchecked: the proxy never inflates, and its peer checks the text it inflates.
                textMessage = opCode == OpCode.TEXT && !frame.isRsv1();
                if (textMessage) {
                    utf8.reset();
                }
            }
            int length = frame.getPayloadLength();
            if (!largeInput && length >= WebSocketProxyHandler.INITIAL_INPUT_BUFFER_SIZE / 2) {
                // This leg carries large frames: read 64 KiB at a time from now on (see the class comment).
                largeInput = true;
                session.setInputBufferSize(WebSocketProxyHandler.FRAME_BUFFER_SIZE);
            }
            // Jetty's parser delivers a frame that has not fully arrived as several pieces: only the first counts.
            Object frames = parser;
            if (frames != null) {
                if (!inFrame) {
                    messageFragments++;
                }
                inFrame = Masking.inFrame(frames);
            } else {
                // Jetty's own parser, which does not say: each piece ends its network read and is never empty. So a
                // frame that is empty, or parsed from the same read as the data frame before it, is one the peer
                // sent. A small piece counts whatever the reads: TLS hands over one record per read, so a peer
                // writing one tiny frame per record would otherwise never be counted, while an honest trickling
                // frame arrives in segment-sized pieces.
                WebSocketConnection conn = connection;
                long bytesIn = conn == null ? lastBytesIn : conn.getBytesIn();
                if (length < SMALL_FRAGMENT || bytesIn == lastBytesIn) {
                    messageFragments++;
                }
                lastBytesIn = bytesIn;
            }
            messageSize += length;
            if (messageSize > route.maxMessageSize()) {
                callback.succeeded();
                onViolation(side, CloseStatus.MESSAGE_TOO_LARGE, "message too big", "message_too_big");
                return;
            }
            if (messageFragments > route.maxFragmentsPerMessage() + (messageSize >>> 10)) {
                callback.succeeded();
                onViolation(side, CloseStatus.MESSAGE_TOO_LARGE, "too many fragments", "too_many_fragments");
                return;
            }
            if (textMessage && ((frame.hasPayload() && !utf8.feed(frame.getPayload()))
                    || (frame.isFin() && !utf8.isComplete()))) {
                callback.succeeded();
                onViolation(side, CloseStatus.BAD_PAYLOAD, "invalid UTF-8", "invalid_utf8");
                return;
            }
            bytes += length;
            if (frame.isFin()) {
                messages++;
            }
            forward(frame, callback);
        }

        /** Sends the frame on the other leg; the frame is released and the next one demanded when that completes. */
        private void forward(Frame frame, Callback callback) {
            CoreSession self = session;
            CoreSession target = other().session;
            if (target == null || !target.isOutputOpen()) {
                // The other leg is closing: drop the frame but keep reading, to see this peer's close frame. A data
                // frame was counted as it arrived (onDataFrame counts before handing it on, while its leg is still
                // the only writer of the counters): it was not relayed. Only here, so the relayed ones cost nothing.
                if (frame.isDataFrame()) {
                    bytes -= frame.getPayloadLength();
                    if (frame.isFin()) {
                        messages--;
                    }
                }
                callback.succeeded();
                WebSocketEndPoints.demand(self);
                return;
            }
            target.sendFrame(frame, new Callback() {
                @Override
                public void succeeded() {
                    callback.succeeded();
                    WebSocketEndPoints.demand(self);
                }

                @Override
                public void failed(Throwable failure) {
                    callback.succeeded();
                    if (target.isOutputOpen()) {
                        // The other leg cannot send: drop its connection; onClosed then tells this leg's peer.
                        if (LOG.isDebugEnabled()) {
                            LOG.debug("[{}] Send to the {} failed", id, other().side, failure);
                        }
                        WebSocketEndPoints.abort(target);
                    }
                    // Not WebSocketEndPoints.demand: a write fails on whichever thread aborted the other leg (the
                    // scheduler's, an application's), and its read is better run by the pool.
                    self.demand();
                }

                @Override
                public InvocationType getInvocationType() {
                    return InvocationType.NON_BLOCKING;
                }
            }, false);
        }

        @Override
        public void onError(Throwable cause, Callback callback) {
            if (LOG.isDebugEnabled()) {
                LOG.debug("[{}] Error on the {} leg", id, side, cause);
            }
            callback.succeeded();
        }

        @Override
        public void onClosed(CloseStatus closeStatus, Callback callback) {
            callback.succeeded();
            if (session != null) {
                onLegClosed(this, closeStatus);
            }
        }
    }
}
