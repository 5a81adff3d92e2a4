import Foundation

/// CPU time spent by the benchmark's processes between two snapshots, from Linux's `/proc`.
/// A saturated machine's throughput swings with its noise; the CPU a reply costs swings much
/// less, so A/B comparisons of code read it at a fixed rate. (It falls as the rate rises —
/// group commit and batched acknowledgements share more work — so capacity is read at
/// saturation, not divided out of a light run.)
struct CPUAccount {
    /// Seconds of CPU (user + system) per part, and the machine's busy seconds over all cores.
    struct Snapshot {
        var parts: [String: Double] = [:]
        var machineBusy: Double = 0
        var taken = ContinuousClock.now
    }

    /// The processes to account separately: a label per pid; PostgreSQL's processes (any named
    /// `postgres`) are found by name, and this process is "bench (Sandbox + load)".
    let pids: [(label: String, pid: Int32)]

    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
    static let postgres = "PostgreSQL"
    static let bench = "bench (Sandbox + load)"

    func snapshot() -> Snapshot {
        var snapshot = Snapshot()
        for (label, pid) in pids { snapshot.parts[label] = Self.processSeconds("/proc/\(pid)/stat")?.seconds ?? 0 }
        snapshot.parts[Self.bench] = Self.processSeconds("/proc/self/stat")?.seconds ?? 0
        var postgres = 0.0
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where entry.first?.isNumber == true {
            if let process = Self.processSeconds("/proc/\(entry)/stat"), process.name == "postgres" { postgres += process.seconds }
        }
        snapshot.parts[Self.postgres] = postgres
        // The first line of /proc/stat: cpu user nice system idle iowait irq softirq steal …
        if let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8), let line = stat.split(separator: "\n").first {
            let fields = line.split(separator: " ").dropFirst().compactMap { Double($0) }
            if fields.count >= 8 { snapshot.machineBusy = (fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]) / Self.ticksPerSecond }
        }
        return snapshot
    }

    /// A process's name and user + system CPU seconds, from its `stat` line.
    static func processSeconds(_ path: String) -> (name: String, seconds: Double)? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")") else { return nil }
        // After "pid (comm) ": state is field 3; utime and stime are fields 14 and 15.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (String(text[text.index(after: open)..<close]), (user + system) / ticksPerSecond)
    }

    /// The "CPU per reply" line for the time between `start` and `end`: each process given in
    /// `pids`, PostgreSQL, this process, then the rest of the machine.
    func report(from start: Snapshot, to end: Snapshot, replies: Int) -> String {
        guard replies > 0 else { return "CPU per reply: no replies" }
        func perReply(_ seconds: Double) -> String { String(format: "%.2f", seconds * 1000 / Double(replies)) }
        let machine = end.machineBusy - start.machineBusy
        var accounted = 0.0
        var parts: [String] = []
        for label in pids.map({ $0.label }) + [Self.postgres, Self.bench] {
            let seconds = (end.parts[label] ?? 0) - (start.parts[label] ?? 0)
            accounted += seconds
            parts.append("\(label) \(perReply(seconds))")
        }
        parts.append("other \(perReply(max(0, machine - accounted)))")
        let wall = end.taken - start.taken
        let cores = Double(ProcessInfo.processInfo.activeProcessorCount)
        let busy = machine / (Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18) / cores
        return "CPU per reply: \(perReply(machine)) ms of the machine's busy time (\(parts.joined(separator: ", ")) ms); the \(Int(cores)) cores were \(Int((busy * 100).rounded())) % busy"
    }
}
