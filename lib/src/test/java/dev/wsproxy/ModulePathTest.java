package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.eclipse.jetty.websocket.api.Callback;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The proxy as a modular application runs it: its module and Jetty's on the module path, where Jetty opens none of
 * its internals. The proxy must work there with Jetty's own masking loops (see {@code internal/Masking}), saying so
 * once in its log however many sessions it relays, instead of failing to load.
 */
class ModulePathTest {

    /** An application on the class path using the proxy's module, as ForkedProxyMain does. */
    private static final String MAIN = """
            import dev.wsproxy.Backend;
            import dev.wsproxy.ProxyBuilder;
            import dev.wsproxy.WebSocketProxy;

            public final class ModularMain {
                public static void main(String[] args) throws Exception {
                    System.out.println("module " + ProxyBuilder.class.getModule().getName());
                    try (WebSocketProxy proxy = ProxyBuilder.create()
                            .listen("127.0.0.1", 0)
                            .route("/", Backend.of(args[0]))
                            .build()) {
                        System.out.println("listening " + proxy.start().getPort());
                        System.out.flush();
                        while (System.in.read() != -1) {
                        }
                    }
                }
            }
            """;

    /**
     * Without the {@code --add-opens} of {@code docs/getting-started.md}, the proxy relays with Jetty's loops and
     * says so once; with them, with its own, silently.
     */
    @ParameterizedTest(name = "Jetty''s codec opened to the proxy: {0}")
    @ValueSource(booleans = {false, true})
    void relaysOnTheModulePathWithTheMaskingItCanReach(boolean opened, @TempDir Path dir) throws Exception {
        // The module path: the proxy's module (its classes directory) and the modular jars it and its logging need.
        List<String> modules = new ArrayList<>();
        String classPath = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
        for (String entry : classPath.split(File.pathSeparator)) {
            String path = entry.replace(File.separatorChar, '/');
            if ((path.endsWith("/classes") && !path.endsWith("/test-classes")) || path.contains("/org/eclipse/jetty/")
                    || path.contains("/org/slf4j/") || path.contains("/org/jspecify/")) {
                modules.add(entry);
            }
        }
        String modulePath = String.join(File.pathSeparator, modules);
        Path source = dir.resolve("ModularMain.java");
        Files.writeString(source, MAIN);
        Path bin = Path.of(System.getProperty("java.home"), "bin");
        Process javac = new ProcessBuilder(bin.resolve("javac").toString(), "--module-path", modulePath,
                "--add-modules", "dev.wsproxy", "-d", dir.toString(), source.toString())
                .redirectErrorStream(true)
                .start();
        String javacOutput = new String(javac.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(javac.waitFor(60, TimeUnit.SECONDS)).isTrue();
        assertThat(javac.exitValue()).as("javac: %s", javacOutput).isZero();

        try (TestBackend backend = new TestBackend("b1"); Clients clients = new Clients()) {
            List<String> command = new ArrayList<>(List.of(bin.resolve("java").toString()));
            if (opened) {
                command.addAll(List.of(
                        "--add-opens", "org.eclipse.jetty.websocket.core.common/org.eclipse.jetty.websocket.core=dev.wsproxy",
                        "--add-opens",
                        "org.eclipse.jetty.websocket.core.common/org.eclipse.jetty.websocket.core.internal=dev.wsproxy",
                        "--add-opens", "org.eclipse.jetty.io/org.eclipse.jetty.io=dev.wsproxy"));
            }
            command.addAll(List.of("--module-path", modulePath, "--add-modules", "dev.wsproxy", "-cp", dir.toString(),
                    "ModularMain", backend.uri().toString()));
            Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
            BlockingQueue<String> lines = new LinkedBlockingQueue<>();
            List<String> output = new CopyOnWriteArrayList<>();
            Thread reader = new Thread(() -> readLines(process, lines, output), "module-path-proxy-output");
            reader.setDaemon(true);
            reader.start();
            try {
                assertThat(nextLineStartingWith(lines, "module ")).isEqualTo("module dev.wsproxy");
                int port = Integer.parseInt(nextLineStartingWith(lines, "listening ").substring(10));

                for (int session = 0; session < 2; session++) {
                    WsRecorder client = clients.connect(URI.create("ws://127.0.0.1:" + port + "/echo"));
                    byte[] payload = new byte[100_003];
                    new Random(session).nextBytes(payload);
                    client.session.sendBinary(ByteBuffer.wrap(payload), Callback.NOOP);
                    assertThat(client.nextBinary()).as("a masked client frame relayed masked again")
                            .isEqualTo(payload);
                    client.sendText("hello");
                    assertThat(client.nextText()).isEqualTo("hello");
                    client.session.close();
                    client.nextClose();
                }
                if (!opened) {
                    assertThat(nextLineContaining(lines, "Masking"))
                            .contains("Masking WebSocket frames with Jetty's own loops");
                }
            } finally {
                process.getOutputStream().close();
                if (!process.waitFor(20, TimeUnit.SECONDS)) {
                    process.destroyForcibly();
                }
            }
            reader.join(TimeUnit.SECONDS.toMillis(20));
            assertThat(reader.isAlive()).as("the proxy's output ended").isFalse();
            assertThat(output).as("the proxy's output").filteredOn(line -> line.contains("Jetty's own loops"))
                    .hasSize(opened ? 0 : 1);
            // The JVM warns of an --add-opens naming a module or package that does not exist.
            assertThat(output).as("the proxy's output").noneMatch(line -> line.startsWith("WARNING"));
        }
    }

    private static void readLines(Process process, BlockingQueue<String> lines, List<String> output) {
        try (BufferedReader out = new BufferedReader(
                new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = out.readLine()) != null) {
                output.add(line);
                lines.add(line);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static String nextLineStartingWith(BlockingQueue<String> lines, String prefix)
            throws InterruptedException {
        return nextLine(lines, prefix, true);
    }

    private static String nextLineContaining(BlockingQueue<String> lines, String text) throws InterruptedException {
        return nextLine(lines, text, false);
    }

    private static String nextLine(BlockingQueue<String> lines, String text, boolean prefix)
            throws InterruptedException {
        List<String> skipped = new ArrayList<>();
        while (true) {
            String line = lines.poll(20, TimeUnit.SECONDS);
            assertThat(line).as("a line with \"%s\" from the proxy; it wrote %s", text, skipped).isNotNull();
            if (prefix ? line.startsWith(text) : line.contains(text)) {
                return line;
            }
            skipped.add(line);
        }
    }
}
