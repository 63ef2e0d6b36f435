package dev.wsproxy.examples.chat;

import java.io.PrintStream;
import java.net.BindException;
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

    private static final String USAGE = "Usage: java [-Dport=PORT] -jar wsproxy-chat.jar [PORT]";

    private Main() {
    }

    /**
     * Starts the demo and prints the URL to open; exits with status 2 for a bad port, 1 when the demo does not start.
     *
     * @param args an optional port
     */
    public static void main(String[] args) {
        int status = run(args, System.out, System.err);
        if (status != 0) {
            System.exit(status);
        }
    }

    /**
     * Does what {@link #main} does, printing to {@code out} and {@code err} and returning the exit status instead of
     * exiting: 0 once the demo runs (until the JVM stops), 2 for a bad port, 1 when the demo does not start.
     */
    static int run(String[] args, PrintStream out, PrintStream err) {
        String value = args.length > 0 ? args[0] : System.getProperty("port", String.valueOf(ChatDemo.DEFAULT_PORT));
        int port;
        try {
            port = Integer.parseInt(value.strip());
        } catch (NumberFormatException e) {
            port = -1;
        }
        if (port < 0 || port > 65535) {
            err.println("port: '" + value + "' (expected: 0 to 65535)");
            err.println(USAGE);
            return 2;
        }
        ChatDemo demo = new ChatDemo();
        URI uri;
        try {
            uri = demo.start(port);
        } catch (Exception e) {
            err.println("Chat demo failed to start on port " + port + ": " + messages(e));
            if (causedBy(e, BindException.class)) {
                err.println("Pick another port, or 0 for a free one. " + USAGE);
            }
            return 1;
        }
        Runtime.getRuntime().addShutdownHook(new Thread(demo::close, "chat-demo-shutdown"));
        out.println("Chat demo ready: open " + uri + " in a browser");
        return 0;
    }

    /**
     * The messages of a failure and of its causes, like {@code Failed to bind to /127.0.0.1:8080: Address already in
     * use}: Jetty's own message does not say why, its cause does (in use, or a port below 1024 without the right).
     */
    private static String messages(Throwable failure) {
        StringBuilder text = new StringBuilder();
        for (Throwable t = failure; t != null; t = t.getCause()) {
            String message = t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage();
            if (text.indexOf(message) < 0) {
                text.append(text.length() == 0 ? "" : ": ").append(message);
            }
        }
        return text.toString();
    }

    private static boolean causedBy(Throwable failure, Class<? extends Throwable> type) {
        for (Throwable t = failure; t != null; t = t.getCause()) {
            if (type.isInstance(t)) {
                return true;
            }
        }
        return false;
    }
}
