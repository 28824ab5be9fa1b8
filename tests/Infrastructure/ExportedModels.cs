using System.Collections.Concurrent;
using System.Diagnostics;

namespace VideoMatch.Tests;

/// <summary>
/// Runs only where an EfficientLoFTR fixture (../shared/reference/eloftr-fixtures) and the exporter's Python
/// (/usr/bin/python3 with torch and onnx) are present; skips with a message that says which is missing.
/// </summary>
public sealed class ExportedModelFactAttribute : FactAttribute
{
    public ExportedModelFactAttribute(string config = "tiny")
    {
        Skip = ExportedModels.Unavailable(config);
    }
}

/// <summary>As <see cref="ExportedModelFactAttribute"/>, for theories.</summary>
public sealed class ExportedModelTheoryAttribute : TheoryAttribute
{
    public ExportedModelTheoryAttribute(string config = "tiny")
    {
        Skip = ExportedModels.Unavailable(config);
    }
}

/// <summary>
/// Exports fixture checkpoints with the project's own exporter (tools/export/export.py), once per test process and set
/// of options, into a temporary folder removed when the process exits.
/// </summary>
internal static class ExportedModels
{
    private static readonly ConcurrentDictionary<string, Lazy<string>> Exports = new();
    private static readonly Lazy<string?> PythonProblem = new(CheckPython);
    private static readonly string Root = Path.Combine(Path.GetTempPath(), $"videomatch-exports-{Environment.ProcessId}");

    static ExportedModels() => AppDomain.CurrentDomain.ProcessExit += (_, _) =>
    {
        try
        {
            if (Directory.Exists(Root))
            {
                Directory.Delete(Root, recursive: true);
            }
        }
        catch (IOException)
        {
            // Best effort: the folder is under the system's temporary directory.
        }
    };

    /// <summary>Input size of each fixture config.</summary>
    public static (int Height, int Width) Size(string config) => config == "tiny" ? (128, 160) : (480, 640);

    /// <summary>Why exports cannot be made here, or null when they can.</summary>
    public static string? Unavailable(string config)
    {
        if (Checkpoint(config) is null)
        {
            return $"../shared/reference/eloftr-fixtures/{config} is absent; this test exports that fixture checkpoint.";
        }

        return PythonProblem.Value;
    }

    /// <summary>The folder of an export of fixture <paramref name="config"/> with extra export.py <paramref name="options"/>.</summary>
    public static string Folder(string config = "tiny", params string[] options) =>
        Exports.GetOrAdd($"{config} {string.Join(' ', options)}", key => new Lazy<string>(() => Export(config, options))).Value;

    /// <summary>
    /// A copy of an export whose self-check claims PyTorch's image-1 keypoints lie 2 px to the right: an export that no
    /// longer agrees with its graph, as a corrupted or mismatched file would.
    /// </summary>
    public static string Tampered(string config = "tiny")
    {
        return Exports.GetOrAdd($"tampered {config}", _ => new Lazy<string>(() =>
        {
            var source = Folder(config);
            var copy = Path.Combine(Root, $"tampered-{config}");
            Directory.CreateDirectory(copy);
            foreach (var file in Directory.GetFiles(source))
            {
                File.Copy(file, Path.Combine(copy, Path.GetFileName(file)), overwrite: true);
            }

            var tools = Path.Combine(Repository.Root, "tools", "export");
            var (exit, output) = RunPython(TimeSpan.FromMinutes(1), "-c",
                "import sys; sys.path.insert(0, sys.argv[1]); from videomatch_export import safetensors_io as s; " +
                "t, m = s.read(sys.argv[2]); k = t['keypoints'].copy(); k[:, 1, :, 0] += 2.0 / " + Size(config).Width.ToString(System.Globalization.CultureInfo.InvariantCulture) +
                "; t['keypoints'] = k; s.write(sys.argv[2], t, m)", tools, Path.Combine(copy, "selfcheck.safetensors"));
            return exit == 0 ? copy : throw new InvalidOperationException($"tampering failed: {output}");
        })).Value;
    }

    public static string? Checkpoint(string config)
    {
        var marker = SharedData.Find($"reference/eloftr-fixtures/{config}/model.safetensors");
        return marker is null ? null : Path.GetDirectoryName(marker);
    }

    private static string Export(string config, string[] options)
    {
        var checkpoint = Checkpoint(config) ?? throw new InvalidOperationException($"fixture {config} is absent");
        var (height, width) = Size(config);
        var folder = Path.Combine(Root, $"{config}-{Exports.Count}-{string.Join('_', options).Replace("-", "", StringComparison.Ordinal)}");
        var script = Path.Combine(Repository.Root, "tools", "export", "export.py");
        string[] args =
        [
            script, "--checkpoint", checkpoint, "--out", folder,
            "--height", height.ToString(System.Globalization.CultureInfo.InvariantCulture), "--width", width.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--extra-check", Path.Combine(checkpoint, "golden.safetensors"), .. options,
        ];
        var (exit, output) = RunPython(Limits.Export, args);
        if (exit == -1)
        {
            throw new TimeoutException($"Exporting fixture '{config}' ({string.Join(' ', options)}) ran past {Limits.Export.TotalMinutes:0} min (Limits.Export); the machine is loaded or export.py hung: {output}");
        }

        if (exit != 0)
        {
            throw new InvalidOperationException($"export.py failed ({exit}): {output}");
        }

        return folder;
    }

    private static string? CheckPython()
    {
        if (!File.Exists("/usr/bin/python3"))
        {
            return "/usr/bin/python3 is absent; the exporter needs Debian's python3 with python3-torch and python3-onnx.";
        }

        var (exit, output) = RunPython(TimeSpan.FromSeconds(60), "-c", "import torch, onnx, numpy");
        return exit == 0 ? null : $"/usr/bin/python3 cannot import torch, onnx and numpy (apt-get install python3-torch python3-onnx): {output.Trim()}";
    }

    private static (int Exit, string Output) RunPython(TimeSpan limit, params string[] args)
    {
        var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(limit))
        {
            process.Kill(entireProcessTree: true);
            return (-1, $"timed out after {limit.TotalSeconds} s");
        }

        return (process.ExitCode, output.Result + errors.Result);
    }
}

/// <summary>Runs only where ONNX Runtime's CUDA provider can load (CUDA 13 and cuDNN 9 libraries found); skips elsewhere.</summary>
public sealed class CudaFactAttribute : FactAttribute
{
    public CudaFactAttribute()
    {
        foreach (var library in new[] { "libcublasLt.so.13", "libcudnn.so.9", "libcudart.so.13" })
        {
            if (!System.Runtime.InteropServices.NativeLibrary.TryLoad(library, out var handle))
            {
                Skip = $"{library} cannot be loaded: no CUDA 13 / cuDNN 9 here, so the CUDA path is not run.";
                return;
            }

            System.Runtime.InteropServices.NativeLibrary.Free(handle);
        }

        Skip = ExportedModels.Unavailable("tiny");
    }
}
