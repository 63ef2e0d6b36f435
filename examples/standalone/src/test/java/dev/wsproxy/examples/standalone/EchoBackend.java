package dev.wsproxy.examples.standalone;

import java.net.URI;

import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.websocket.api.Callback;
import org.eclipse.jetty.websocket.api.Session;
import org.eclipse.jetty.websocket.server.WebSocketUpgradeHandler;

/** A Jetty WebSocket server on a free port that answers each text message with {@code TAG:PATH:MESSAGE}. */
final class EchoBackend {

    private final Server server = new Server();
    private final ServerConnector connector = new ServerConnector(server);

    EchoBackend(String tag) {
        connector.setHost("127.0.0.1");
        server.addConnector(connector);
        server.setHandler(WebSocketUpgradeHandler.from(server, container -> container.addMapping("/*",
                (request, response, callback) -> new Echo(tag, request.getHttpURI().getPath()))));
    }

    URI start() throws Exception {
        server.start();
        return URI.create("ws://127.0.0.1:" + connector.getLocalPort());
    }

    void stop() throws Exception {
        server.stop();
    }

    /** Echoes text messages, tagged. */
    public static final class Echo implements Session.Listener.AutoDemanding {
        private final String tag;
        private final String path;
        private Session session;

        Echo(String tag, String path) {
            this.tag = tag;
            this.path = path;
        }

        @Override
        public void onWebSocketOpen(Session session) {
            this.session = session;
        }

        @Override
        public void onWebSocketText(String message) {
            session.sendText(tag + ":" + path + ":" + message, Callback.NOOP);
        }

        @Override
        public void onWebSocketError(Throwable cause) {
            // The proxy dropped the connection: expected in the tests that stop it.
        }
    }
}
