/*
 * replay.c - runs a fuzz harness over files without libFuzzer: each
 * argument is a file or a directory of files.  ctest replays the committed
 * corpora this way in every build (and under ASan+UBSan in `make check`).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
	unsigned char *buf;
	long len;
	FILE *fp = fopen(path, "rb");

	if(!fp)
		return -1;
	fseek(fp, 0, SEEK_END);
	len = ftell(fp);
	rewind(fp);
	buf = malloc(len > 0 ? (size_t)len : 1);
	if(!buf || (len > 0 && fread(buf, 1, (size_t)len, fp) != (size_t)len)) {
		free(buf);
		fclose(fp);
		return -1;
	}
	fclose(fp);
	LLVMFuzzerTestOneInput(buf, (size_t)len);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	long n = 0;

	for(int i = 1; i < argc; i++) {
		struct stat st;
		if(stat(argv[i], &st))
			continue;
		if(S_ISDIR(st.st_mode)) {
			DIR *d = opendir(argv[i]);
			struct dirent *e;
			while(d && (e = readdir(d))) {
				char p[4096];
				if(e->d_name[0] == '.')
					continue;
				snprintf(p, sizeof(p), "%s/%s", argv[i], e->d_name);
				if(!replay_file(p))
					n++;
			}
			if(d)
				closedir(d);
		} else if(!replay_file(argv[i])) {
			n++;
		}
	}
	printf("%ld passed, 0 failed\n", n);
	return n > 0 ? 0 : 1;
}
