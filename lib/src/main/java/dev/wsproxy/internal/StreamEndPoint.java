package dev.wsproxy.internal;

import java.io.IOException;
import java.net.SocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ReadPendingException;
import java.nio.channels.WritePendingException;

import org.eclipse.jetty.io.Connection;
import org.eclipse.jetty.io.EndPoint;
import org.eclipse.jetty.util.Callback;
import org.jspecify.annotations.Nullable;

/**
 * The end point of a client's WebSocket on an HTTP/2 stream (RFC 8441): Jetty's tunnel end point, to which it hands
 * everything, and which it tells the relay has a write waiting.
 *
 * <h2>Why</h2>
 * The relay's write timeout (see "Write timeout" in {@link Relay}) asks a socket's write flusher whether a write to the
 * peer is pending. Jetty's stream end point ({@code HTTP2StreamEndPoint}) has none: it hands each write to its stream
 * as one DATA frame, which waits in the h2 connection's flusher for the stream's and the connection's flow-control
 * windows, and it keeps the write's state to itself. So a client that took nothing (it sends no {@code WINDOW_UPDATE})
 * while it kept sending (a heartbeat thread's pings) held its session, and the backend's output behind it, for as long
 * as it sent: its frames keep the stream from ever being idle, so neither the stream's idle timeout nor the proxy's
 * pings found it. The client leg's connection writes through this end point instead, which marks a write from the
 * moment it is handed over until its callback completes ({@link #isWritePending}); the relay reads the mark where it
 * reads a write flusher's state, with the connection's bytes handed out to tell one write from the next.
 *
 * <h2>Cost</h2>
 * No allocation per write: one write at a time, as Jetty's frame flusher writes, so one callback of this end point's
 * completes each write in turn for the caller's ({@link #completion}); a second write while one is pending fails with
 * {@link WritePendingException}, as the stream end point's own would, and changes nothing. Socket end points have no
 * such wrapper and pay nothing.
 */
final class StreamEndPoint implements EndPoint, EndPoint.Wrapper {

    private final EndPoint endPoint;
    private volatile boolean writing;
    /** The caller's callback of the write in flight; {@code null} when none is. */
    private volatile @Nullable Callback pending;
    /** Completes the write in flight: clears the mark, then completes the caller's callback. */
    private final Callback completion = new Callback() {
        @Override
        public void succeeded() {
            done().succeeded(); // the mark cleared first: the flusher's next write may start in this call
        }

        @Override
        public void failed(Throwable x) {
            done().failed(x);
        }

        @Override
        public InvocationType getInvocationType() {
            Callback callback = pending;
            return callback == null ? InvocationType.BLOCKING : callback.getInvocationType();
        }
    };

    StreamEndPoint(EndPoint endPoint) {
        this.endPoint = endPoint;
    }

    /** Whether a write was handed to the stream and has not completed: it waits for the client's window. */
    boolean isWritePending() {
        return writing;
    }

    @Override
    public void write(Callback callback, ByteBuffer... buffers) throws WritePendingException {
        if (writing) {
            throw new WritePendingException();
        }
        pending = callback;
        writing = true;
        try {
            endPoint.write(completion, buffers);
        } catch (RuntimeException e) {
            done();
            throw e;
        }
    }

    /** Ends the write in flight and returns its caller's callback ({@link Callback#NOOP} if it ended already). */
    private Callback done() {
        Callback callback = pending;
        pending = null;
        writing = false;
        return callback == null ? Callback.NOOP : callback;
    }

    @Override
    public EndPoint unwrap() {
        return endPoint;
    }

    @Override
    public @Nullable Callback cancelWrite(Throwable cause) {
        return endPoint.cancelWrite(cause);
    }

    @Override
    public SocketAddress getLocalSocketAddress() {
        return endPoint.getLocalSocketAddress();
    }

    @Override
    public SocketAddress getRemoteSocketAddress() {
        return endPoint.getRemoteSocketAddress();
    }

    @Override
    public boolean isOpen() {
        return endPoint.isOpen();
    }

    @Override
    public long getCreatedTimeStamp() {
        return endPoint.getCreatedTimeStamp();
    }

    @Override
    public void shutdownOutput() {
        endPoint.shutdownOutput();
    }

    @Override
    public boolean isOutputShutdown() {
        return endPoint.isOutputShutdown();
    }

    @Override
    public boolean isInputShutdown() {
        return endPoint.isInputShutdown();
    }

    @Override
    public void close(Throwable cause) {
        endPoint.close(cause);
    }

    @Override
    public int fill(ByteBuffer buffer) throws IOException {
        return endPoint.fill(buffer);
    }

    @Override
    public boolean flush(ByteBuffer... buffers) throws IOException {
        return endPoint.flush(buffers);
    }

    @Override
    public Object getTransport() {
        return endPoint.getTransport();
    }

    @Override
    public long getIdleTimeout() {
        return endPoint.getIdleTimeout();
    }

    @Override
    public void setIdleTimeout(long idleTimeout) {
        endPoint.setIdleTimeout(idleTimeout);
    }

    @Override
    public void fillInterested(Callback callback) throws ReadPendingException {
        endPoint.fillInterested(callback);
    }

    @Override
    public boolean tryFillInterested(Callback callback) {
        return endPoint.tryFillInterested(callback);
    }

    @Override
    public boolean isFillInterested() {
        return endPoint.isFillInterested();
    }

    @Override
    public Connection getConnection() {
        return endPoint.getConnection();
    }

    @Override
    public void setConnection(Connection connection) {
        endPoint.setConnection(connection);
    }

    @Override
    public void onOpen() {
        endPoint.onOpen();
    }

    @Override
    public void onClose(Throwable cause) {
        endPoint.onClose(cause);
    }

    @Override
    public void upgrade(Connection newConnection) {
        endPoint.upgrade(newConnection);
    }

    @Override
    public @Nullable SslSessionData getSslSessionData() {
        return endPoint.getSslSessionData();
    }

    @Override
    public boolean isSecure() {
        return endPoint.isSecure();
    }

    @Override
    public String toString() {
        return "StreamEndPoint[" + endPoint + "]";
    }
}
