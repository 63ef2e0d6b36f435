package dev.wsproxy.internal;

import org.eclipse.jetty.io.ByteBufferPool;
import org.eclipse.jetty.io.RetainableByteBuffer;

/**
 * A view of a buffer pool that hands out direct buffers only, for the backend legs' WebSocket connections.
 *
 * <h2>Why</h2>
 * The JDK reads and writes sockets through direct memory: a heap buffer costs one more copy of every byte, into or
 * out of a temporary direct buffer, on each read and each write. Jetty's client-side WebSocket connection reads into
 * heap buffers, and its frame flusher (both sides) writes from heap buffers whatever the connection is told
 * ({@code WebSocketConnection.setUseOutputDirectByteBuffers} does not reach the flusher, which is built first). On the
 * backend leg that is two extra copies of every byte the backend sends (read, then write to the client from the same
 * buffer) and one of every byte the client sends (masked into a heap buffer, then copied to write). The backend
 * client's WebSocket components get this pool, so its connections read and flush with direct buffers: measured, 16 %
 * less CPU per 16 KiB round trip and 19 % less per 1 MiB one ({@code docs/benchmarks.md}).
 *
 * <p>The client leg already reads into direct buffers (Jetty's server default); its flusher's heap buffers only
 * carry frame headers and small frames there, as large frames are written from the buffer they arrived in.
 */
final class DirectBuffers extends ByteBufferPool.Wrapper {

    DirectBuffers(ByteBufferPool pool) {
        super(pool);
    }

    @Override
    public RetainableByteBuffer.Mutable acquire(int size, boolean direct) {
        return super.acquire(size, true);
    }
}
