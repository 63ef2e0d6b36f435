package dev.wsproxy;

import java.util.List;

/**
 * What a {@link BackendSelector} knows when it picks a backend for a new session: the client's
 * {@link HandshakeRequest} and the route's backends.
 */
public interface SelectionContext extends HandshakeRequest {

    /**
     * Returns the backends of the matched route, in the order they were configured.
     *
     * @return the candidate backends, never empty
     */
    List<Backend> backends();
}
