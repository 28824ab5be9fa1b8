using System.Diagnostics;
using VideoMatch.Tests;
using Xunit.Abstractions;

namespace VideoMatch.Cli.Tests;

/// <summary>
/// The C# client as its users get it: <c>dotnet pack</c> of VideoMatch.Contracts and VideoMatch.Client into a
/// folder, and a new console project outside the repository that references the package (no project reference, none
/// of the repository's build settings) and streams to a real server through it.
/// </summary>
public sealed class PackageTests(LoopbackServer server, ITestOutputHelper output) : IClassFixture<LoopbackServer>, IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("videomatch-package-");

#if DEBUG
    private const string Configuration = "Debug";
#else
    private const string Configuration = "Release";
#endif

    private string? _version;

    public void Dispose()
    {
        _folder.Delete(recursive: true);
        // The test's own versions, extracted into NuGet's global folder by the consumer's restore.
        var packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } set ? set
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        foreach (var id in new[] { "videomatch.client", "videomatch.contracts" })
        {
            var folder = Path.Combine(packages, id, _version ?? "none");
            if (_version is not null && Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }
        }
    }

    [Fact]
    public async Task PackedClient_InANewProject_StreamsOverTwoAddressesAndMatches()
    {
        // A version of its own: NuGet's global cache would otherwise hand the consumer a package packed by an earlier run.
        var version = _version = $"0.1.0-test.{DateTime.UtcNow:yyyyMMddHHmmssfff}";
        var feed = Path.Combine(_folder.FullName, "feed");
        foreach (var project in new[] { "src/VideoMatch.Contracts", "clients/csharp/VideoMatch.Client" })
        {
            // --no-build: the test run built them; packing must not rebuild what other test processes have loaded.
            await DotnetAsync(Repository.Root, "pack", Path.Combine(Repository.Root, project), "-c", Configuration, "--no-build", "-o", feed, $"-p:Version={version}");
        }

        Assert.True(File.Exists(Path.Combine(feed, $"VideoMatch.Client.{version}.nupkg")));
        Assert.True(File.Exists(Path.Combine(feed, $"VideoMatch.Contracts.{version}.nupkg")));
        var app = Directory.CreateDirectory(Path.Combine(_folder.FullName, "app")).FullName;
        await File.WriteAllTextAsync(Path.Combine(app, "Consumer.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
                <ImplicitUsings>enable</ImplicitUsings>
                <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
                <RestoreAdditionalProjectSources>{feed}</RestoreAdditionalProjectSources>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="VideoMatch.Client" Version="{version}" />
              </ItemGroup>
            </Project>
            """);
        await File.WriteAllTextAsync(Path.Combine(app, "Program.cs"), ConsumerProgram);
        // Nothing of the repository's build (Directory.Build.props, central package versions) reaches a folder under /tmp.
        await DotnetAsync(app, "build", "-c", "Release", "--nologo", "-v", "q");

        var down = $"http://127.0.0.1:{Ports.Free()}";
        var lines = (await DotnetAsync(app, "bin/Release/net10.0/Consumer.dll", down, server.Url)).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

        Assert.Equal("status 0 FirstFrame", lines[0]);
        for (var i = 1; i < 5; i++)
        {
            var parts = lines[i].Split(' ');
            Assert.Equal(["pair", $"{i - 1}", $"{i}"], parts[..3]);
            Assert.True(int.Parse(parts[3], System.Globalization.CultureInfo.InvariantCulture) > 100, lines[i]);
        }

        Assert.StartsWith("match ", lines[5], StringComparison.Ordinal);
        Assert.Equal(6, lines.Length);
    }

    /// <summary>A user's program: two servers (the first down), a resumable stream of a panning texture, one pair match.</summary>
    private const string ConsumerProgram = """
        using VideoMatch.Client;
        using VideoMatch.Contracts.V1;

        var options = new VideoMatchClientOptions();
        options.Addresses.Add(new Uri(args[0]));
        options.Addresses.Add(new Uri(args[1]));
        using var client = new VideoMatchClient(options);
        var info = await client.GetModelInfoAsync();
        int width = (int)info.InputWidth, height = (int)info.InputHeight;
        var random = new Random(7);
        var blocks = new byte[(height / 8 + 4) * (width / 8 + 4)];
        random.NextBytes(blocks);
        byte[] Window(int shift)
        {
            var pixels = new byte[width * height];
            for (var y = 0; y < height; y++)
                for (var x = 0; x < width; x++)
                    pixels[y * width + x] = blocks[(y + shift) / 8 * (width / 8 + 4) + (x + 2 * shift) / 8];
            return pixels;
        }

        async IAsyncEnumerable<Frame> Frames()
        {
            for (var i = 0; i < 5; i++)
            {
                await Task.Yield();
                yield return new Frame { Sequence = (ulong)i, Image = Images.Raw(PixelFormat.Gray8, width, height, Window(i)) };
            }
        }

        await foreach (var response in client.StreamAsync(Frames(), new StreamConfig { TrackIds = true }, new StreamResumeOptions()))
            Console.WriteLine(response.Pair is { } p ? $"pair {p.Sequence0} {p.Sequence1} {p.Matches.Count}" : $"status {response.Status.Sequence} {response.Status.Code}");
        var pair = await client.MatchAsync(Images.Raw(PixelFormat.Gray8, width, height, Window(0)), Images.Raw(PixelFormat.Gray8, width, height, Window(3)));
        Console.WriteLine($"match {pair.Matches.Count}");
        """;

    private async Task<string> DotnetAsync(string folder, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = folder };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        // The test host's MSBuild settings (set by dotnet test) must not leak into the child builds.
        foreach (var name in new[] { "MSBuildExtensionsPath", "MSBuildSDKsPath", "MSBUILD_EXE_PATH", "DOTNET_HOST_PATH" })
        {
            start.Environment.Remove(name);
        }

        var (exitCode, stdout, stderr) = await ProcessRuns.ToExitAsync(start);
        output.WriteLine($"dotnet {string.Join(' ', args)}: exit {exitCode}\n{stdout}{stderr}");
        Assert.True(exitCode == 0, $"dotnet {string.Join(' ', args)} exited {exitCode}: {stdout}{stderr}");
        return stdout;
    }
}
