package dev.wsproxy.internal;

import java.nio.ByteBuffer;

import org.eclipse.jetty.http.HttpFields;
import org.jspecify.annotations.Nullable;

/**
 * The backend's answer to a handshake, as {@link BackendHandshake} read it: status, headers and the first bytes of the
 * body, so that a refusal can be relayed to the client as the backend sent it. The status and headers are published
 * once the response head is complete; a body is read up to the cap, then the connection is closed.
 */
final class BackendResponse {

    private final int maxBody;
    private volatile int status;
    private volatile HttpFields headers = HttpFields.EMPTY;
    private volatile @Nullable Runnable closer;
    private ByteBuffer collected = ByteBuffer.allocate(0); // guarded by this
    /** Whether the body came whole: its end was read, not the cap, an end of file or a fault first. */
    private volatile boolean whole;

    BackendResponse(int maxBody) {
        this.maxBody = maxBody;
    }

    /** Publishes the response head; called once, by the thread that parsed it. */
    void head(int status, HttpFields headers) {
        this.headers = headers;
        this.status = status;
    }

    /** Remembers how to close the connection that carries this response. */
    void closer(Runnable closer) {
        this.closer = closer;
    }

    /**
     * Keeps what fits under the cap of {@code content}; {@code true} once the body goes past the cap. A body of just
     * the cap's size is read to its end, which tells that it is whole.
     */
    synchronized boolean append(ByteBuffer content) {
        int room = maxBody - collected.position();
        if (room <= 0) {
            return content.hasRemaining();
        }
        int take = Math.min(room, content.remaining());
        if (collected.remaining() < take) {
            ByteBuffer larger = ByteBuffer.allocate(Math.min(maxBody, Math.max(collected.capacity() * 2,
                    collected.position() + take)));
            collected.flip();
            larger.put(collected);
            collected = larger;
        }
        ByteBuffer slice = content.slice();
        slice.limit(take);
        collected.put(slice);
        return take < content.remaining();
    }

    /** The body's end was read: {@link #body} is all of it. */
    void complete() {
        whole = true;
    }

    /**
     * Whether {@link #body} is the whole body: not when the body went past the cap, or the connection ended or broke
     * before its end.
     */
    boolean whole() {
        return whole;
    }

    /**
     * Closes the backend connection that carried a refused or broken handshake, so that it is neither reused nor
     * left open until an idle timeout (a {@code 101} that failed validation leaves it half upgraded). Idempotent.
     */
    void closeConnection() {
        Runnable close = closer;
        if (close != null) {
            close.run();
        }
    }

    /** The backend's status, or 0 when no complete response head arrived. */
    int status() {
        return status;
    }

    HttpFields headers() {
        return headers;
    }

    /** The captured body, at most the cap. */
    synchronized ByteBuffer body() {
        ByteBuffer copy = collected.duplicate();
        copy.flip();
        return copy;
    }
}
