package dev.wsproxy.internal;

import org.eclipse.jetty.server.Request;
import org.jspecify.annotations.Nullable;

/**
 * Watches a client whose upgrade waits (for its authenticator's decision, then for the backend's handshake), so that a
 * client that leaves ends the wait at once: one watch for the whole request, armed by each wait in turn and disarmed
 * before that wait answers the client or goes on.
 *
 * <p>An HTTP/1.1 client is watched through its socket ({@link WebSocketEndPoints#watchClient}), which carries nothing
 * else while the upgrade waits. An HTTP/2 client (RFC 8441) must not be: its socket carries the connection's other
 * streams, and its HTTP/2 connection reads it all along. Its stream is watched through the request's failure
 * listeners: the connection sees the stream end (a reset, the connection closed, the stream's idle timeout) and fails
 * the request. That listener is added once, when the request arrives ({@link #of}): Jetty drops a listener added after
 * the request failed, so one added for each wait could miss a reset that came between two.
 */
abstract sealed class ClientWatch {

    /** Arms the watch: runs {@code onGone} when the client leaves, at once if it left already. */
    abstract void watch(Runnable onGone);

    /**
     * Disarms the watch. An {@code onGone} already running (the client left at that moment) still runs: each wait
     * decides once, whichever of its events comes first.
     */
    abstract void unwatch();

    /** The watch of {@code request}, an upgrade ({@code overHttp2}: an extended {@code CONNECT}). */
    static ClientWatch of(Request request, boolean overHttp2) {
        if (!overHttp2) {
            return new Socket(WebSocketEndPoints.home(request));
        }
        Stream stream = new Stream();
        request.addFailureListener(failure -> stream.gone());
        return stream;
    }

    private static final class Socket extends ClientWatch {
        private final @Nullable Object home;

        Socket(@Nullable Object home) {
            this.home = home;
        }

        @Override
        void watch(Runnable onGone) {
            WebSocketEndPoints.watchClient(home, onGone);
        }

        @Override
        void unwatch() {
            WebSocketEndPoints.unwatchClient(home);
        }
    }

    private static final class Stream extends ClientWatch {
        private boolean gone;
        private @Nullable Runnable onGone;

        @Override
        void watch(Runnable onGone) {
            synchronized (this) {
                if (!gone) {
                    this.onGone = onGone;
                    return;
                }
            }
            onGone.run();
        }

        @Override
        synchronized void unwatch() {
            onGone = null;
        }

        private void gone() {
            Runnable armed;
            synchronized (this) {
                gone = true;
                armed = onGone;
                onGone = null;
            }
            if (armed != null) {
                armed.run();
            }
        }
    }
}
