package dev.wsproxy;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

/**
 * What is written to standard error while an action runs, on any thread: slf4j-simple, on the tests' class path,
 * writes its log lines there, and looks {@code System.err} up for each line.
 */
public final class StandardError {

    /** An action that may throw. */
    @FunctionalInterface
    public interface Action {
        void run() throws Exception;
    }

    private StandardError() {
    }

    /**
     * Standard error captured from now until {@link Capture#close()}, and readable meanwhile: a test awaits a line that
     * another thread writes.
     */
    public static Capture capture() {
        return new Capture();
    }

    /** What is written to standard error while it is open; closing it restores standard error. */
    public static final class Capture implements AutoCloseable {
        private final PrintStream saved = System.err;
        private final ByteArrayOutputStream captured = new ByteArrayOutputStream();

        private Capture() {
            System.setErr(new PrintStream(captured, true, StandardCharsets.UTF_8));
        }

        /** What was written so far. */
        public String text() {
            return captured.toString(StandardCharsets.UTF_8);
        }

        @Override
        public void close() {
            System.setErr(saved);
        }
    }

    /** Runs {@code action} and returns what was written to standard error meanwhile. */
    public static String of(Action action) throws Exception {
        PrintStream saved = System.err;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        System.setErr(new PrintStream(captured, true, StandardCharsets.UTF_8));
        try {
            action.run();
        } finally {
            System.setErr(saved);
        }
        return captured.toString(StandardCharsets.UTF_8);
    }
}
