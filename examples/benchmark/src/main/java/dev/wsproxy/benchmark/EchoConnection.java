package dev.wsproxy.benchmark;

import java.nio.ByteBuffer;
import java.util.concurrent.CompletableFuture;

import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.websocket.core.CloseStatus;
import org.eclipse.jetty.websocket.core.CoreSession;
import org.eclipse.jetty.websocket.core.Frame;
import org.eclipse.jetty.websocket.core.FrameHandler;
import org.eclipse.jetty.websocket.core.OpCode;

/**
 * One closed-loop echo connection: send one message, wait for the whole echo (all its fragments), record the round
 * trip, send the next. In probe mode it sends a single message and then stays idle (the idle-hold workloads).
 *
 * <p>One message is in flight at a time, so the frame callbacks of one connection never run concurrently.
 */
final class EchoConnection implements FrameHandler {

    private final RunState state;
    private final byte opCode;
    private final ByteBuffer payload;
    private final boolean loop;
    /** Completes on the first echo (probe) and is failed if the connection closes first. */
    final CompletableFuture<EchoConnection> firstEcho = new CompletableFuture<>();
    /** Completes when Jetty reports the session closed. */
    final CompletableFuture<CloseStatus> closed = new CompletableFuture<>();
    private volatile CoreSession session;
    private volatile boolean closing;
    private long sentAt;
    private long received;

    /**
     * @param payload read-only message, never changed: each send masks a copy of it
     * @param loop {@code true} to keep sending while the run is running, {@code false} to send once
     */
    EchoConnection(RunState state, byte opCode, ByteBuffer payload, boolean loop) {
        this.state = state;
        this.opCode = opCode;
        this.payload = payload;
        this.loop = loop;
    }

    /** Sends the first message; the session is open. */
    void start() {
        send();
    }

    private void send() {
        sentAt = System.nanoTime();
        received = 0;
        session.sendFrame(new Frame(opCode, true, payload.slice()), Callback.from(() -> { }, failure -> {
            if (!closing) {
                state.error("send failed: " + failure);
            }
        }), false);
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
                    onEcho(System.nanoTime() - sentAt);
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

    private void onEcho(long nanos) {
        int expected = payload.remaining();
        if (received != expected) {
            state.error("echo of " + received + " bytes for " + expected);
        }
        if (!loop) {
            state.completed(nanos, expected);
            firstEcho.complete(this);
            return;
        }
        if (state.completed(nanos, expected) && !closing) {
            send();
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
        callback.succeeded();
        if (!closing) {
            state.error("closed by the peer: " + closeStatus);
        }
        firstEcho.completeExceptionally(new IllegalStateException("closed before the echo: " + closeStatus));
        closed.complete(closeStatus);
    }
}
