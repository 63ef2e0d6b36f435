package dev.wsproxy.examples.chat;

import java.net.URI;

/**
 * Runs the chat demo until the JVM is stopped (Ctrl-C).
 *
 * <pre>
 * java -jar examples/chat/target/wsproxy-chat.jar [PORT]
 * java -Dport=9090 -jar examples/chat/target/wsproxy-chat.jar
 * </pre>
 *
 * <p>The port comes from the first argument, else the {@code port} system property, else {@value
 * ChatDemo#DEFAULT_PORT}; 0 picks a free port.
 */
public final class Main {

    private Main() {
    }

    /**
     * Starts the demo and prints the URL to open.
     *
     * @param args an optional port
     */
    public static void main(String[] args) {
        String value = args.length > 0 ? args[0] : System.getProperty("port", String.valueOf(ChatDemo.DEFAULT_PORT));
        int port;
        try {
            port = Integer.parseInt(value.strip());
        } catch (NumberFormatException e) {
            port = -1;
        }
        if (port < 0 || port > 65535) {
            System.err.println("port: '" + value + "' (expected: 0 to 65535)");
            System.err.println("Usage: java [-Dport=PORT] -jar wsproxy-chat.jar [PORT]");
            System.exit(2);
        }
        ChatDemo demo = new ChatDemo();
        try {
            URI uri = demo.start(port);
            Runtime.getRuntime().addShutdownHook(new Thread(demo::close, "chat-demo-shutdown"));
            System.out.println("Chat demo ready: open " + uri + " in a browser");
        } catch (Exception e) {
            System.err.println("Chat demo failed to start on port " + port + ": " + e);
            System.exit(1);
        }
    }
}
