using System.Diagnostics;
using VideoMatch.Tests;

namespace VideoMatch.Cli.Tests;

/// <summary>The README's way to get a fast <c>videomatch</c> works as written.</summary>
public sealed class ReadmeTests : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("videomatch-readme-");

    public void Dispose() => _folder.Delete(recursive: true);

    [Fact]
    public async Task Readme_PublishCommand_GivesAVideomatchThatRuns()
    {
        const string Published = "~/.local/share/videomatch";
        var command = File.ReadLines(Path.Combine(Repository.Root, "README.md"))
            .Single(l => l.StartsWith("dotnet publish clients/csharp/VideoMatch.Cli ", StringComparison.Ordinal));
        Assert.Contains($"alias videomatch={Published}/videomatch", await File.ReadAllTextAsync(Path.Combine(Repository.Root, "README.md")), StringComparison.Ordinal);
        var arguments = command.Replace(Published, _folder.FullName, StringComparison.Ordinal).Split(' ')[1..];

        var (publishExit, publishOutput) = await RunAsync("dotnet", Repository.Root, arguments);
        var (helpExit, help) = await RunAsync(Path.Combine(_folder.FullName, "videomatch"), _folder.FullName, "--help");

        Assert.True(publishExit == 0, publishOutput);
        Assert.True(helpExit == 0, help);
        Assert.Contains("match", help, StringComparison.Ordinal);
        Assert.Contains("verify", help, StringComparison.Ordinal);
    }

    private static async Task<(int Exit, string Output)> RunAsync(string program, string directory, params string[] arguments)
    {
        var start = new ProcessStartInfo(program) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(Limits.Call);
        return (process.ExitCode, await output + await errors);
    }
}
