import Foundation
import MontanaCrypto

/// A real static file server: `python3 -m http.server --bind 127.0.0.1 PORT --directory DIR`,
/// started as a child process and stopped by PID.
final class FileServer: @unchecked Sendable {
    let directory: String
    let port: Int
    let process: ChildProcess

    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// The real interpreter behind `python3` (pyenv installs a shell shim; ask Python itself so
    /// the PID we stop is the server's own).
    static func pythonExecutable() throws -> String {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import sys; print(sys.executable)"]
        probe.environment = ChildProcess.cleanEnvironment
        let pipe = Pipe()
        probe.standardOutput = pipe
        probe.standardError = FileHandle.nullDevice
        try probe.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        probe.waitUntilExit()
        let path = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard probe.terminationStatus == 0, FileManager.default.isExecutableFile(atPath: path) else {
            throw E2EError("python3 is not available (needed for the file server)")
        }
        return path
    }

    init(serving directory: String, logDirectory: String) throws {
        self.directory = directory
        port = try Net.freePort()
        process = try ChildProcess(name: "http.server", executable: try Self.pythonExecutable(),
                                   arguments: ["-m", "http.server", "--bind", "127.0.0.1", "\(port)", "--directory", directory],
                                   logDirectory: logDirectory)
        let process = self.process
        guard Net.waitForListener(port, timeout: 20, alive: { process.isRunning }) else {
            let tail = process.outputTail()
            process.stop(grace: 1)
            throw E2EError("python3 -m http.server did not listen on \(port)\n\(tail)")
        }
    }

    func stop() { process.stop(grace: 3) }
}

/// Random test files and their digests.
enum TestFiles {
    /// Writes `size` random bytes (from /dev/urandom) to `directory/name`; returns the SHA-256.
    @discardableResult
    static func writeRandom(_ name: String, size: Int, in directory: String) throws -> [UInt8] {
        let path = (directory as NSString).appendingPathComponent(name)
        guard let random = FileHandle(forReadingAtPath: "/dev/urandom") else { throw E2EError("no /dev/urandom") }
        defer { try? random.close() }
        var data = Data()
        while data.count < size { data += random.readData(ofLength: size - data.count) }
        try data.write(to: URL(fileURLWithPath: path))
        return Digests.sha256(data)
    }

    /// SHA-256 and size of a file; a missing file counts as empty (curl may not create the
    /// output file for an empty body).
    static func digest(_ path: String) -> (sha256: [UInt8], size: Int) {
        let data = FileManager.default.contents(atPath: path) ?? Data()
        return (Digests.sha256(data), data.count)
    }
}

func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

/// A real upload sink: a small Python `http.server` that answers every PUT or POST with the
/// SHA-256 and length of the body it received (`<hex> <length>\n`). Stopped by PID.
final class UploadServer: @unchecked Sendable {
    let port: Int
    let process: ChildProcess

    var url: String { "http://127.0.0.1:\(port)/upload" }

    static let script = """
    import hashlib, sys
    from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
    class Sink(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def do_PUT(self):
            length = int(self.headers.get("Content-Length", "0"))
            digest, left = hashlib.sha256(), length
            while left > 0:
                chunk = self.rfile.read(min(left, 65536))
                if not chunk:
                    break
                digest.update(chunk)
                left -= len(chunk)
            body = ("%s %d\\n" % (digest.hexdigest(), length - left)).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        do_POST = do_PUT
        def log_message(self, *args):
            pass
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
    """

    init(logDirectory: String) throws {
        port = try Net.freePort()
        let scriptPath = (logDirectory as NSString).appendingPathComponent("upload_sink.py")
        try Self.script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        process = try ChildProcess(name: "upload-sink", executable: try FileServer.pythonExecutable(),
                                   arguments: [scriptPath, "\(port)"], logDirectory: logDirectory)
        let process = self.process
        guard Net.waitForListener(port, timeout: 20, alive: { process.isRunning }) else {
            let tail = process.outputTail()
            process.stop(grace: 1)
            throw E2EError("the upload sink did not listen on \(port)\n\(tail)")
        }
    }

    func stop() { process.stop(grace: 3) }
}
