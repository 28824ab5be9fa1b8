using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using VideoMatch.Engine.Frames;
using VideoMatch.Engine.Inference;

/// <summary>
/// Resident memory of the matcher per batch size, with ONNX Runtime's CPU arena and memory pattern on and off. Each configuration runs
/// in a process of its own (RSS is a process's, and the arena never shrinks): it opens the model, then runs batches
/// of every size from 1 up to B, as a batcher under varying load forms them, several rounds, and reports RSS after
/// opening, the peak (VmHWM) and RSS at the end.
/// </summary>
internal static partial class Memory
{
    private const int Rounds = 3;

    private static readonly int[] BatchSizes = [1, 2, 4, 8, 16];

    public static void Run(Settings settings)
    {
        Console.WriteLine($"# RSS per batch size, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, embedded model {settings.Width}×{settings.Height}, CPU");
        Console.WriteLine($"Batches of every size 1..B, {Rounds} rounds, in a fresh process per row.");
        Console.WriteLine();
        Console.WriteLine("| Inference:CpuMemoryArena | Inference:CpuMemoryPattern | largest batch B | RSS after open (MiB) | peak RSS (MiB) | RSS at the end (MiB) | ms per pair |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (var (arena, pattern) in new[] { (true, true), (true, false), (false, false) })
        {
            foreach (var batch in BatchSizes.Where(b => b <= settings.Batch))
            {
                Console.WriteLine($"| {Text(arena)} | {Text(pattern)} | {batch} | {Child(settings, batch, arena, pattern)} |");
            }
        }
    }

    /// <summary>One configuration in this process; prints its figures on one line.</summary>
    public static void RunOne(Settings settings, bool arena, bool pattern)
    {
        var options = new InferenceOptions { EmbeddedWidth = settings.Width, EmbeddedHeight = settings.Height, CpuMemoryArena = arena, CpuMemoryPattern = pattern };
        using var matcher = ModelLoader.Open(options, settings.Batch);
        var opened = Rss();
        var preparer = new FramePreparer(settings.Width, settings.Height, 8192, elementType: matcher.FrameType);
        var input = Preprocessing.Frame(FramePixelFormat.Gray8, settings.Width, settings.Height);
        var pairs = 0;
        var clock = Stopwatch.StartNew();
        for (var round = 0; round < Rounds; round++)
        {
            for (var size = 1; size <= settings.Batch; size++)
            {
                var frames = Enumerable.Range(0, size + 1).Select(_ => preparer.Prepare(input)).ToArray();
                var batch = Enumerable.Range(0, size).Select(i => new PairInput(frames[i], frames[i + 1], 0.2f, 0)).ToArray();
                matcher.Match(batch, new PairMatchResult[size]);
                foreach (var frame in frames)
                {
                    frame.Release();
                }

                pairs += size;
            }
        }

        var msPerPair = clock.Elapsed.TotalMilliseconds / pairs;
        GC.Collect();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{opened:F0} | {Status("VmHWM"):F0} | {Rss():F0} | {msPerPair:F0}"));
    }

    private static string Text(bool value) => value ? "true" : "false";

    private static string Child(Settings settings, int batch, bool arena, bool pattern)
    {
        var start = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true };
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet")
        {
            start.ArgumentList.Add(typeof(Memory).Assembly.Location);
        }

        foreach (var argument in new[] { "memory-one", "--width", $"{settings.Width}", "--height", $"{settings.Height}", "--batch", $"{batch}", "--arena", arena ? "1" : "0", "--pattern", pattern ? "1" : "0" })
        {
            start.ArgumentList.Add(argument);
        }

        using var child = Process.Start(start)!;
        var lines = child.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        child.WaitForExit();
        return child.ExitCode == 0 && lines.Length > 0 ? lines[^1].Trim() : $"failed (exit {child.ExitCode}) | | | |";
    }

    private static double Rss() => Status("VmRSS");

    /// <summary>A /proc/self/status figure in MiB.</summary>
    private static double Status(string field)
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return long.Parse(Kilobytes().Match(line).Groups[1].Value, CultureInfo.InvariantCulture) / 1024.0;
    }

    [GeneratedRegex(@"(\d+) kB")]
    private static partial Regex Kilobytes();
}
