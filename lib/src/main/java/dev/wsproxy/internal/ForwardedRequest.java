package dev.wsproxy.internal;

import java.util.Objects;

import org.eclipse.jetty.io.Content;
import org.eclipse.jetty.server.Request;

import org.eclipse.jetty.http.HttpURI;
import org.jspecify.annotations.Nullable;

/**
 * One plain HTTP request forwarded on a route, across its attempts: the backend of the current attempt (for passive
 * health) and the route's {@link FailoverBudget}, the one a {@link Handshake} spends for an upgrade. An attempt starts
 * on the thread that handles the request, or on the one that saw the attempt before it fail; attempts never overlap,
 * but they run on different threads, hence the volatile fields.
 */
final class ForwardedRequest {

    final Route route;
    final HandshakeRequestView view;
    /** The route's {@link Timeouts}, read once for the request. */
    final Timeouts timeouts;
    /** The route's failover budget, spent by every backend picked for the request. */
    final FailoverBudget budget;
    private volatile @Nullable BackendState backend;
    private volatile @Nullable HttpURI target;
    private volatile BackendState.Trial trial = BackendState.Trial.NONE;
    /** The access log's token for how the current attempt failed; {@code null} while it has not. */
    private volatile @Nullable String failure;
    /** Whether a request of unknown length has a body ({@link #hasBody}); {@code null} until its first read. */
    private @Nullable Boolean hasBody;
    /** The chunk {@link #hasBody} read, until an attempt's body reads it ({@link #takePeeked}). */
    private Content.@Nullable Chunk peeked;
    /** The current attempt's request to its backend, once sent ({@link #sent}). Guarded by this. */
    private org.eclipse.jetty.client.@Nullable Request sent;
    /** How the client left ({@link #watchClient}), or {@code null} while it has not. Guarded by this. */
    private @Nullable Throwable gone;

    ForwardedRequest(Route route, HandshakeRequestView view, Timeouts timeouts) {
        this.route = route;
        this.view = view;
        this.timeouts = timeouts;
        this.budget = new FailoverBudget(route.failover());
    }

    /**
     * Whether {@code request}, of unknown length and without {@code Transfer-Encoding} (HTTP/2 and later), has a body:
     * its first read tells, the first time it is asked. A request whose head ended its stream reads the end at once (a
     * {@code GET}): no body. Otherwise what that read gave is kept, for the attempt's body to read first
     * ({@link #takePeeked}): nothing yet, the body's first bytes, or its failure.
     */
    synchronized boolean hasBody(Request request) {
        if (hasBody == null) {
            Content.Chunk chunk = request.read();
            hasBody = chunk == null || Content.Chunk.isFailure(chunk) || !chunk.isLast() || chunk.hasRemaining();
            peeked = hasBody ? chunk : null;
        }
        return hasBody;
    }

    /** The chunk {@link #hasBody} read, once; {@code null} when there is none, or it was taken. */
    synchronized Content.@Nullable Chunk takePeeked() {
        Content.Chunk chunk = peeked;
        peeked = null;
        return chunk;
    }

    /** Releases the chunk {@link #hasBody} read if no attempt's body took it: the request has ended. */
    void releasePeeked() {
        Content.Chunk chunk = takePeeked();
        if (chunk != null) {
            chunk.release();
        }
    }

    /**
     * Watches the client of {@code request}, over HTTP/2 or later, for the end of its stream while the request waits
     * for its backend (a reset: a {@code fetch} aborted, a long poll given up; or its connection closed): the current
     * attempt's request to the backend is then aborted, and the request ends as one whose client left
     * ({@link HttpForwarder#CLIENT_LEFT}). Jetty tells the request's failure listeners of that end only while nothing
     * is read from the client or written to it (a body's read, a response's write fail instead), which is just when
     * nothing else would notice it: the backend connection stayed open until the backend answered, or the route's
     * idle timeout passed. Over HTTP/1 a client that leaves is not seen then (nothing reads its socket), as before.
     * Called once per request, before its first attempt: Jetty drops a listener added after the request failed.
     */
    void watchClient(Request request) {
        if (request.getConnectionMetaData().getHttpVersion().getVersion() >= 20) {
            request.addFailureListener(this::clientGone);
        }
    }

    private void clientGone(Throwable failure) {
        org.eclipse.jetty.client.Request request;
        synchronized (this) {
            gone = failure;
            request = sent;
        }
        if (request != null) {
            abortForClient(request, failure);
        }
    }

    /** Whether the client's stream ended while the request waited ({@link #watchClient}). */
    synchronized boolean clientGone() {
        return gone != null;
    }

    /** Notes the current attempt's request to its backend, sent; aborts it at once if the client left already. */
    void sent(org.eclipse.jetty.client.Request request) {
        Throwable left;
        synchronized (this) {
            sent = request;
            left = gone;
        }
        if (left != null) {
            abortForClient(request, left);
        }
    }

    /** Aborts the attempt's request to its backend for its client, gone ({@code cause}): nothing failed there. */
    private void abortForClient(org.eclipse.jetty.client.Request request, Throwable cause) {
        this.failure = HttpForwarder.CLIENT_LEFT;
        request.abort(cause);
    }

    /**
     * Sends the current attempt, counted in {@link #budget} when its backend was picked, to {@code target}, holding
     * {@code trial} (its backend's, or {@link BackendState.Trial#NONE}); the previous attempt's is released, if it
     * was not yet.
     */
    void attempt(BackendState state, HttpURI target, BackendState.Trial trial) {
        BackendState.Trial previous = this.trial;
        this.backend = state;
        this.target = target;
        this.trial = trial;
        this.failure = null;
        previous.release();
    }

    /**
     * The current attempt's hold on its backend's trial: released when the attempt's head is written (the trial goes
     * on) or it failed (after its failure was recorded), and at the latest when the request's response ends.
     */
    BackendState.Trial trial() {
        return trial;
    }

    /** Notes how the current attempt failed, as the access log's token ({@code backend_unreachable}). */
    void failed(String token) {
        this.failure = token;
    }

    /** How the current attempt failed, or {@code null}. */
    @Nullable String failure() {
        return failure;
    }

    /** The backend of the current attempt. */
    BackendState backend() {
        return Objects.requireNonNull(backend, "no attempt started");
    }

    /** The URI of the current attempt. */
    HttpURI target() {
        return Objects.requireNonNull(target, "no attempt started");
    }
}
