package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A {@link ForkedProxyMain} in a JVM of its own with a 64 MiB heap and 64 MiB of direct memory, which an unbounded
 * buffer ends with an OutOfMemoryError instead of passing by luck in the test JVM's large heap. Its log can go to a
 * file of the test's, read once the proxy has stopped, to check what the proxy logs.
 */
final class ForkedProxy implements AutoCloseable {

    private final Process process;
    private final BufferedReader out;
    private final Writer in;
    private final int port;

    private ForkedProxy(URI backend, List<String> jvmOptions, ProcessBuilder.Redirect stderr, List<String> settings)
            throws IOException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> command = new ArrayList<>(List.of(java, "-Xmx64m", "-XX:MaxDirectMemorySize=64m",
                "-XX:+ExitOnOutOfMemoryError"));
        command.addAll(jvmOptions);
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), ForkedProxyMain.class.getName(),
                backend.toString()));
        command.addAll(settings);
        process = new ProcessBuilder(command).redirectError(stderr).start();
        out = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
        in = new OutputStreamWriter(process.getOutputStream(), StandardCharsets.UTF_8);
        port = Integer.parseInt(line("listening"));
    }

    /** Starts a proxy with one route, {@code /}, to {@code backend}, and waits until it listens. */
    static ForkedProxy start(URI backend) throws IOException {
        return new ForkedProxy(backend, List.of(), ProcessBuilder.Redirect.INHERIT, List.of());
    }

    /**
     * Like {@link #start(URI)}, with the proxy's standard error (where slf4j-simple logs) written to {@code stderr},
     * {@code jvmOptions} added to the JVM's (system properties such as slf4j-simple's log levels), and
     * {@code settings} for {@link ForkedProxyMain}.
     */
    static ForkedProxy start(URI backend, Path stderr, List<String> jvmOptions, String... settings)
            throws IOException {
        return new ForkedProxy(backend, jvmOptions, ProcessBuilder.Redirect.to(stderr.toFile()), List.of(settings));
    }

    /** The port the proxy listens on. */
    int port() {
        return port;
    }

    /** The proxy's URI for {@code path}. */
    URI ws(String path) {
        return URI.create("ws://127.0.0.1:" + port + path);
    }

    /** The most heap after a full GC that the memory tests let the proxy keep: three quarters of its 64 MiB. */
    static final long HEAP_BOUND = 48L * 1024 * 1024;

    /**
     * Fails unless the proxy is alive and keeps less than {@link #HEAP_BOUND} of heap after a full GC; returns that
     * heap. {@code when} says at what point of the test, in the failure message.
     */
    long assertHeapBounded(String when) throws IOException {
        assertThat(isAlive()).as("the proxy, alive %s", when).isTrue();
        long heap = heapAfterGc();
        assertThat(heap).as("proxy heap after GC %s", when).isLessThan(HEAP_BOUND);
        return heap;
    }

    /**
     * The bytes of heap the proxy's live threads have allocated so far (the JVM's per-thread counts, summed): two
     * readings bound what the proxy allocated between them, garbage included, which the heap after a GC does not see.
     */
    long allocated() throws IOException {
        in.write("allocated\n");
        in.flush();
        return Long.parseLong(line("allocated"));
    }

    /** The heap the proxy uses after a full GC. */
    long heapAfterGc() throws IOException {
        in.write("heap\n");
        in.flush();
        return Long.parseLong(line("heap"));
    }

    boolean isAlive() {
        return process.isAlive();
    }

    /** The exit code of a proxy that has ended, after {@link #close()}. */
    int exitValue() {
        return process.exitValue();
    }

    private String line(String prefix) throws IOException {
        String line;
        do {
            line = out.readLine();
            assertThat(line).as("the forked proxy is alive").isNotNull();
        } while (!line.startsWith(prefix));
        return line.substring(prefix.length()).trim();
    }

    /** Closes the proxy's standard input, which stops it, and waits for it (forcibly after 20 s). */
    @Override
    public void close() throws IOException, InterruptedException {
        in.close();
        if (!process.waitFor(20, TimeUnit.SECONDS)) {
            process.destroyForcibly();
        }
    }
}
