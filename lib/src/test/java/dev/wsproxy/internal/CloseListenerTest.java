package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.net.ConnectException;
import java.net.Socket;
import java.nio.channels.ServerSocketChannel;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

import org.eclipse.jetty.server.HttpConnectionFactory;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.junit.jupiter.api.Test;

/** {@link WebSocketEndPoints#closeListener}: what {@code reusePort}'s stop does first. */
class CloseListenerTest {

    @Test
    void releasesTheListeningSocketOfAnIdleServerAtOnceAndRefusesTheNextConnection() throws Exception {
        // Closed from another thread, a socket registered with a selector is released only at that selector's next
        // select: on a server with nothing to do, it went on listening, and the next connection was taken into its
        // queue and reset later instead of being refused (or going to a successor on the same address).
        Server server = new Server(WebSocketEndPoints.threadPool());
        ServerConnector connector = WebSocketEndPoints.serverConnector(server, 2, new HttpConnectionFactory());
        connector.setHost("127.0.0.1");
        server.addConnector(connector);
        server.start();
        try {
            int port = connector.getLocalPort();
            ServerSocketChannel listener = (ServerSocketChannel) connector.getTransport();
            // A selector registers the listener for accepts as an update of its own, after the start returned.
            await("accepting on a selector").atMost(Duration.ofSeconds(5)).until(listener::isRegistered);

            WebSocketEndPoints.closeListener(connector).get(5, TimeUnit.SECONDS);
            assertThat(listener.isOpen()).as("closed when the returned future completes").isFalse();

            await("released by its selector").atMost(Duration.ofSeconds(5))
                    .until(() -> !listener.isOpen() && !listener.isRegistered());
            assertThatThrownBy(() -> new Socket("127.0.0.1", port).close()).as("the next connection")
                    .isInstanceOf(ConnectException.class);
            assertThat(server.isRunning()).isTrue();
        } finally {
            server.stop();
        }
    }
}
