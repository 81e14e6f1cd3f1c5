using Mobility.Fuzz;
using SharpFuzz;

// Mobility.Fuzz: fuzz targets for the parsers of network and file bytes (docs/fuzzing.md).
//   Mobility.Fuzz list                    the targets, what each drives and what it may throw
//   Mobility.Fuzz TARGET                  under afl-fuzz (__AFL_SHM_ID set): SharpFuzz's loop; otherwise one input from stdin
//   Mobility.Fuzz replay TARGET FILE...   each file through the harness; exit 1 on the first crash
//   Mobility.Fuzz seeds DIR               writes every seed corpus to DIR/TARGET/NAME (fuzz/corpus in the repository)
const string Usage = "usage: Mobility.Fuzz list | TARGET | replay TARGET FILE... | seeds DIR";

if (args.Length == 0 || args[0] is "-h" or "--help")
{
    Console.WriteLine(Usage);
    return args.Length == 0 ? 2 : 0;
}

switch (args[0])
{
    case "list":
        foreach (var t in Targets.All)
        {
            Console.WriteLine($"{t.Name,-13} {t.Parsers}");
            Console.WriteLine($"{"",-13} rejects with: {string.Join(", ", t.Rejections.Select(r => r.Name))}");
        }

        return 0;

    case "seeds" when args.Length == 2:
        foreach (var t in Targets.All)
        {
            var directory = Path.Combine(args[1], t.Name);
            Directory.CreateDirectory(directory);
            foreach (var seed in t.Seeds())
            {
                File.WriteAllBytes(Path.Combine(directory, seed.Name), seed.Bytes);
            }
        }

        return 0;

    case "replay" when args.Length >= 3:
        {
            var target = Find(args[1]);
            foreach (var file in args.Skip(2))
            {
                var bytes = File.ReadAllBytes(file);
                try
                {
                    Console.WriteLine($"{file}: {Harness.Run(target, bytes)}");
                }
                catch (FuzzFailureException e)
                {
                    Console.WriteLine($"{file}: CRASH {e.Message}");
                    Console.WriteLine($"input ({bytes.Length} bytes): {Convert.ToHexString(bytes)}");
                    Console.WriteLine(e.InnerException?.ToString() ?? e.StackTrace);
                    return 1;
                }
            }

            return 0;
        }

    default:
        {
            if (args.Length != 1 || Targets.Find(args[0]) is not { } target)
            {
                Console.Error.WriteLine($"Unknown target or command '{string.Join(' ', args)}'. {Usage}");
                Console.Error.WriteLine($"Targets: {string.Join(", ", Targets.All.Select(t => t.Name))}");
                return 2;
            }

            if (Environment.GetEnvironmentVariable("__AFL_SHM_ID") is null)
            {
                Harness.Run(target, ReadInput(Console.OpenStandardInput()));
                return 0;
            }

            // Out of process: SharpFuzz runs the inputs in a child process, so that one that kills the
            // process (a stack overflow) is reported as a crash instead of stopping the fork server.
            // Nothing instrumented may run in this process before this call.
            Fuzzer.OutOfProcess.Run(stream => Harness.Run(target, ReadInput(stream)));
            return 0;
        }
}

static FuzzTarget Find(string name)
    => Targets.Find(name) ?? throw new ArgumentException($"Unknown target '{name}': {string.Join(", ", Targets.All.Select(t => t.Name))}.");

// At most Harness.MaxInputSize bytes: a parser never sees more in one message.
static byte[] ReadInput(Stream stream)
{
    var buffer = new byte[Harness.MaxInputSize];
    var filled = 0;
    int read;
    while (filled < buffer.Length && (read = stream.Read(buffer, filled, buffer.Length - filled)) > 0)
    {
        filled += read;
    }

    return buffer[..filled];
}
