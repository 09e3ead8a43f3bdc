# A 64-bit ELF that runs 32-bit code: it forks (a zombie), prints "ready", then far-returns to the 32-bit
# code segment (cs 0x23) and computes there, polling a non-blocking stdin with int 0x80 until a line comes;
# then it prints the sum 1..50000 (1250025000), reaps its child and exits. Built with `as --64` and `ld`
# (static, below 4 GiB so that 32-bit code can address it).
        .section .bss
        .align 16
stack32: .space 4096
stack32_top:
buf:    .space 64
out:    .space 32
        .section .rodata
ready:  .ascii "ready\n"
        .text
        .code64
        .globl _start
_start:
        movl $57, %eax                  # fork
        syscall
        testl %eax, %eax
        jnz parent
        movl $60, %eax                  # the child: exit(0)
        xorl %edi, %edi
        syscall
parent:
        movl $72, %eax                  # fcntl(0, F_SETFL, O_NONBLOCK)
        xorl %edi, %edi
        movl $4, %esi
        movl $0x800, %edx
        syscall
        movl $1, %eax                   # write(1, "ready\n", 6)
        movl $1, %edi
        leaq ready(%rip), %rsi
        movl $6, %edx
        syscall
        leaq stack32_top(%rip), %rsp
        pushq $0x23                     # __USER32_CS
        leaq code32(%rip), %rax
        pushq %rax
        lretq
        .code32
code32:
        movw $0x2b, %ax                 # __USER_DS: 32-bit code addresses memory through ds
        movw %ax, %ds
        movw %ax, %es
poll:
        xorl %esi, %esi                 # work: esi = 1 + 2 + ... + 50000, over and over
        movl $50000, %ecx
1:      addl %ecx, %esi
        loop 1b
        movl $3, %eax                   # read(0, buf, 64): EAGAIN until the test writes a line
        xorl %ebx, %ebx
        movl $buf, %ecx
        movl $64, %edx
        int $0x80
        testl %eax, %eax
        jle poll
        movl $out+31, %edi
        movb $10, (%edi)
        movl %esi, %eax
        movl $10, %ebx
2:      decl %edi
        xorl %edx, %edx
        divl %ebx
        addb $'0', %dl
        movb %dl, (%edi)
        testl %eax, %eax
        jnz 2b
        movl $out+32, %edx
        subl %edi, %edx
        movl %edi, %ecx
        movl $1, %ebx
        movl $4, %eax
        int $0x80
        movl $7, %eax                   # waitpid(-1, NULL, 0)
        movl $-1, %ebx
        xorl %ecx, %ecx
        xorl %edx, %edx
        int $0x80
        movl $1, %eax
        xorl %ebx, %ebx
        int $0x80
