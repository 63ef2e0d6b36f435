package dev.wsproxy.internal;

import java.nio.ByteBuffer;

import org.eclipse.jetty.client.Connection;
import org.eclipse.jetty.client.Request;
import org.eclipse.jetty.http.HttpFields;
import org.eclipse.jetty.websocket.core.client.UpgradeListener;
import org.jspecify.annotations.Nullable;

/**
 * Captures the backend's answer to the handshake: status, headers and the first bytes of the body, so that a refusal
 * can be relayed to the client as the backend sent it. Bodies past the cap are read and dropped.
 */
final class BackendResponse implements UpgradeListener {

    private final int maxBody;
    private volatile int status;
    private volatile HttpFields headers = HttpFields.EMPTY;
    private volatile @Nullable Request request;
    private ByteBuffer collected = ByteBuffer.allocate(0); // guarded by this

    BackendResponse(int maxBody) {
        this.maxBody = maxBody;
    }

    @Override
    public void onHandshakeRequest(Request request) {
        this.request = request;
        request.onResponseHeaders(response -> {
            headers = response.getHeaders();
            status = response.getStatus();
        });
        request.onResponseContent((response, content) -> append(content));
    }

    /** Called with the 101 too (the response listeners above are not, once Jetty's upgrade handler takes over). */
    @Override
    public void onHandshakeResponse(Request request, org.eclipse.jetty.client.Response response) {
        headers = response.getHeaders();
        status = response.getStatus();
    }

    private synchronized void append(ByteBuffer content) {
        int room = maxBody - collected.position();
        if (room <= 0) {
            return;
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
    }

    /**
     * Closes the backend connection that carried a refused or broken handshake, so that it is neither reused nor
     * left open until an idle timeout (a {@code 101} that failed validation leaves it half upgraded).
     */
    void closeConnection() {
        Request sent = request;
        Connection connection = sent == null ? null : sent.getConnection();
        if (connection != null) {
            connection.close();
        }
    }

    /** The backend's status, or 0 when no response arrived. */
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
