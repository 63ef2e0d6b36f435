package dev.wsproxy.benchmark;

import java.nio.ByteBuffer;
import java.util.concurrent.CompletableFuture;
import java.util.function.LongSupplier;

import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.websocket.core.CloseStatus;
import org.eclipse.jetty.websocket.core.CoreSession;
import org.eclipse.jetty.websocket.core.Frame;
import org.eclipse.jetty.websocket.core.FrameHandler;
import org.eclipse.jetty.websocket.core.OpCode;

/**
 * One echo connection, in one of three modes: closed loop (send one message, wait for the whole echo, all its
 * fragments, record the round trip, send the next), probe (one message, then idle: the idle holds) or paced (a
 * {@link Pacer} sends on its own schedule, whatever is in flight: the open-loop workloads).
 *
 * <p>The echo comes back in the order of the sends, so the send times wait in a first-in first-out ring and each
 * echo's round trip is measured from its own message's send. The frame callbacks of one connection never run
 * concurrently; in paced mode the pacer's thread sends while they run, so the ring is locked.
 */
final class EchoConnection implements FrameHandler {

    /** The most messages a paced connection lets wait for their echo (its ring's size). */
    static final int MAX_IN_FLIGHT = 1024;

    /** No message in flight ({@link System#nanoTime()} may be negative, never this). */
    private static final long NONE = Long.MIN_VALUE;

    enum Mode {
        /** One message in flight; the next is sent when its echo is back, while the run runs. */
        CLOSED_LOOP,
        /** One message, then idle. */
        PROBE,
        /** Messages sent by {@link #sendNow()} from a pacer, up to {@link #MAX_IN_FLIGHT} in flight. */
        PACED
    }

    private final RunState state;
    private final byte opCode;
    private final ByteBuffer payload;
    private final Mode mode;
    private final LongSupplier clock;
    /** Completes on the first echo (probe) and is failed if the connection closes first. */
    final CompletableFuture<EchoConnection> firstEcho = new CompletableFuture<>();
    /** Completes when Jetty reports the session closed. */
    final CompletableFuture<CloseStatus> closed = new CompletableFuture<>();
    private volatile CoreSession session;
    private volatile boolean closing;
    /** Set when a send failed or the session closed: no more sends. */
    private volatile boolean broken;
    /** Send times of the messages in flight, oldest first: a ring of {@code inFlight} slots from {@code head}. */
    private final long[] sentAt;
    private int head;
    private int inFlight;
    /** Bytes of the echo being received. */
    private long received;

    /**
     * @param payload read-only message, never changed: each send masks a copy of it
     * @param mode closed loop, probe or paced
     */
    EchoConnection(RunState state, byte opCode, ByteBuffer payload, Mode mode) {
        this(state, opCode, payload, mode, System::nanoTime);
    }

    /** With the clock of the round trips (tests). */
    EchoConnection(RunState state, byte opCode, ByteBuffer payload, Mode mode, LongSupplier clock) {
        this.state = state;
        this.opCode = opCode;
        this.payload = payload;
        this.mode = mode;
        this.clock = clock;
        this.sentAt = new long[mode == Mode.PACED ? MAX_IN_FLIGHT : 1];
    }

    /** Sends the first message of a closed loop or a probe; the session is open. */
    void start() {
        sendNow();
    }

    /**
     * Sends one message now; never blocks (Jetty queues what the socket does not take). Tells {@code false}, sending
     * nothing, when the ring of messages waiting for their echo is full ({@link #MAX_IN_FLIGHT} paced, one
     * otherwise), or once a send failed or the session closed: the pairing of echoes with sends would be lost.
     */
    boolean sendNow() {
        if (broken) {
            return false;
        }
        synchronized (sentAt) {
            if (inFlight == sentAt.length) {
                return false;
            }
            sentAt[(head + inFlight) % sentAt.length] = clock.getAsLong();
            inFlight++;
        }
        session.sendFrame(new Frame(opCode, true, payload.slice()), Callback.from(() -> { }, failure -> {
            broken = true;
            if (!closing) {
                state.error("send failed: " + failure);
            }
        }), false);
        return true;
    }

    /** How long the oldest message in flight has waited for its echo, in nanoseconds; 0 when none waits. */
    long oldestWaitNanos() {
        synchronized (sentAt) {
            return inFlight == 0 ? 0 : clock.getAsLong() - sentAt[head];
        }
    }

    /** The send time of the oldest message in flight, now echoed; {@link #NONE} for an echo of nothing sent. */
    private long echoed() {
        synchronized (sentAt) {
            if (inFlight == 0) {
                return NONE;
            }
            long sent = sentAt[head];
            head = (head + 1) % sentAt.length;
            inFlight--;
            return sent;
        }
    }

    /** Starts the close handshake; {@link #closed} completes when it is over. */
    void close() {
        closing = true;
        CoreSession s = session;
        if (s == null) {
            closed.complete(null);
        } else {
            s.close(CloseStatus.NORMAL, null, Callback.NOOP);
        }
    }

    /** Drops the connection without a close handshake (a close that did not finish in time). */
    void abort() {
        closing = true;
        CoreSession s = session;
        if (s != null) {
            s.abort();
        }
    }

    @Override
    public void onOpen(CoreSession coreSession, Callback callback) {
        session = coreSession;
        callback.succeeded();
        coreSession.demand();
    }

    @Override
    public void onFrame(Frame frame, Callback callback) {
        switch (frame.getOpCode()) {
            case OpCode.TEXT, OpCode.BINARY, OpCode.CONTINUATION -> {
                received += frame.getPayloadLength();
                boolean fin = frame.isFin();
                callback.succeeded();
                if (fin) {
                    onEcho(clock.getAsLong());
                }
                session.demand();
            }
            case OpCode.PING -> {
                session.sendFrame(new Frame(OpCode.PONG, frame.getPayload()), callback, false);
                session.demand();
            }
            // Jetty answers a close frame when its callback completes.
            case OpCode.CLOSE -> callback.succeeded();
            default -> {
                callback.succeeded();
                session.demand();
            }
        }
    }

    private void onEcho(long now) {
        int expected = payload.remaining();
        if (received != expected) {
            state.error("echo of " + received + " bytes for " + expected);
        }
        received = 0;
        long sent = echoed();
        if (sent == NONE) {
            state.error("an echo of no message sent");
            return;
        }
        boolean again = state.completed(now - sent, expected);
        switch (mode) {
            case PROBE -> firstEcho.complete(this);
            case CLOSED_LOOP -> {
                if (again && !closing) {
                    sendNow();
                }
            }
            case PACED -> { }
        }
    }

    @Override
    public void onError(Throwable cause, Callback callback) {
        if (!closing) {
            state.error("session error: " + cause);
        }
        callback.succeeded();
    }

    @Override
    public void onClosed(CloseStatus closeStatus, Callback callback) {
        broken = true;
        callback.succeeded();
        if (!closing) {
            state.error("closed by the peer: " + closeStatus);
        }
        firstEcho.completeExceptionally(new IllegalStateException("closed before the echo: " + closeStatus));
        closed.complete(closeStatus);
    }
}
